#!/usr/bin/env bash
# edgeprune's default plan against Torch-Pruning's uniform and global plans and the speed ceiling, at 2x fewer
# MACs on every CPU target other than cpu-ort, with the planner as of 2026-12-05: pretrained ResNet-56 and
# MobileNet-V2 (random init), one interleaved run per target and model, the shipped profile of each target.
#   bash bench/targets/peer-2026-12-05/run.sh
set -u
cd "$(dirname "$0")/../../.."
D=bench/targets/peer-2026-12-05
for t in cpu-ort-int8 cpu-xnnpack cpu-openvino cpu-xnnpack-int8 cpu-openvino-int8; do
  for m in cifar_resnet56 mobilenet_v2; do
    [ -f "$D/planner-$t-$m.json" ] && continue
    extra=""; [ "$m" = cifar_resnet56 ] && extra="--pretrained"
    echo "== $(date -u +%T) $t $m"
    python tools/bench_planner.py --target "$t" --macs 0.5x --model "$m" $extra --peer --ceiling \
      --out "$D/planner-$t-$m.json" > "$D/log-$t-$m.txt" 2>&1 || echo "failed: $t $m"
  done
done
echo "== done $(date -u +%T)"
