#!/usr/bin/env bash
# edgeprune's default plan against Torch-Pruning's uniform and global plans and the speed ceiling at 2x fewer
# MACs, planned from this VM's own profiles (run.sh): pretrained ResNet-56 and MobileNet-V2 (random init), one
# interleaved run per target and model. On its own device the default times the plan shapes (--compare-plans).
#   [D=FOLDER] bash bench/targets/intel-all/peer.sh [TARGET ...]
set -u
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
D=${D:-bench/targets/intel-all}  # another folder: D=bench/targets/NAME
for t in ${*:-cpu-ort-int8 cpu-openvino-int8 cpu-openvino}; do
  for m in cifar_resnet56 mobilenet_v2; do
    [ -f "$D/planner-$t-$m.json" ] && continue
    extra=""; [ "$m" = cifar_resnet56 ] && extra="--pretrained"
    echo "== $(date -u +%T) $t $m"
    python tools/bench_planner.py --target "$t" --macs 0.5x --model "$m" $extra --peer --ceiling \
      --profile "$(ls $D/$t--*.json | head -1)" --out "$D/planner-$t-$m.json" > "$D/log-$t-$m.txt" 2>&1 \
      || echo "failed: $t $m"
  done
done
echo "== done $(date -u +%T)"
