#!/usr/bin/env bash
# Where a detector's time goes on ExecuTorch/XNNPACK: YOLOv8n (COCO-pretrained) and a 30 % magnitude shrink of it,
# validated on cpu-xnnpack (fp32) and cpu-xnnpack-int8 at 640² with coco256's val images; the reports' per-layer
# tables come from ExecuTorch's ETDump (XNNPACK's per-operator times). Writes report.json/.md per target here.
#   bash bench/targets/etdump/run.sh            (EDGEPRUNE_DATA: the shared data folder; OUT: scratch, /tmp/etdump)
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
D=bench/targets/etdump; O=${OUT:-/tmp/etdump}; DATA=${EDGEPRUNE_DATA:-../shared/data}
mkdir -p $O
Y=$O/coco256.yaml
sed "s#^path: .*#path: $(realpath "$DATA/coco256")#" "$DATA/coco256/coco256.yaml" > $Y
[ -d $O/pruned ] || edgeprune shrink ultralytics:yolov8n.yaml --pretrained --ratio 0.3 --out $O/pruned > $O/shrink.log 2>&1
for T in cpu-xnnpack cpu-xnnpack-int8; do
  echo "== $T $(date -u +%H:%M:%S)"
  C=""; [ $T = cpu-xnnpack-int8 ] && C="--calibration-count 128"
  edgeprune validate ultralytics:yolov8n.yaml $O/pruned --pretrained --target $T --data $Y --input-size 640 $C \
    --out $O/$T > $O/$T.log 2>&1
  mkdir -p $D/$T && cp $O/$T/report.json $O/$T/report.md $D/$T/
done
echo "== done $(date -u +%H:%M:%S)"
