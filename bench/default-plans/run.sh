#!/usr/bin/env bash
# `edgeprune prune MODEL --target cpu-ort --macs 0.5x` with default settings (random weights, registry input
# size) on models no benchmark covers: does the default plan go through, and what does it say when it
# cannot? Writes results.md here; the pruned models go to a temporary folder.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=$(mktemp -d)
MD=bench/default-plans/results.md
MODELS=${MODELS:-"efficientnet_b0 mobilenet_v3_large mobilenet_v3_small regnet_y_400mf regnet_x_400mf mnasnet1_0
  shufflenet_v2_x1_0 squeezenet1_1 resnet18 convnext_tiny densenet121 googlenet efficientnet_v2_s swin_t vit_b_16
  inception_v3 timm:ghostnet_100 timm:mobilenetv4_conv_small timm:fastvit_t8 timm:repvgg_a0 timm:rexnet_100
  timm:lcnet_050 timm:hgnetv2_b0 timm:efficientformerv2_s0 timm:mobileone_s0 timm:starnet_s050
  lraspp_mobilenet_v3_large ssdlite320_mobilenet_v3_large ultralytics:yolo11n.yaml ultralytics:yolov9t.yaml
  ultralytics:yolo26n.yaml"}
{
  echo "# Default plans at half the MACs on cpu-ort ($(date -u +%Y-%m-%d), edgeprune $(git describe --always --dirty))"
  echo
  echo "| model | exit | MACs | ranked by | last line |"
  echo "|---|---:|---:|---|---|"
} > $MD.tmp
for m in $MODELS; do
  d=$OUT/$(echo "$m" | tr ':/' '__')
  edgeprune prune "$m" --target cpu-ort --macs 0.5x --out "$d" > "$d.log" 2>&1
  rc=$?
  macs=$(grep -o 'macs: .*(.*x)' "$d.log" | grep -o '([0-9.]*x)' | tr -d '()')
  ranked=$(grep -q 'ranked by MACs' "$d.log" && echo "MACs (no tables)" || { [ $rc = 0 ] && echo latency; })
  last=$(grep -v '^\s*$' "$d.log" | tail -1 | sed "s#$OUT/##; s/|/\\\\|/g")
  echo "| $m | $rc | ${macs:--} | ${ranked:--} | $last |" >> $MD.tmp
done
mv $MD.tmp $MD
rm -rf "$OUT"
