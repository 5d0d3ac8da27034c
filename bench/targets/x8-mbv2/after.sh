#!/usr/bin/env bash
# After run.sh: resume the measure until MobileNet-V2 is calibrated (at most 3 more runs of BUDGET_S), then
# check that ResNet-56's predictions did not move (compose.py writes the profile that would ship), check
# MobileNet-V2's predictions on 5 random plans (2 passes), plot both staircases, and plan MobileNet-V2 at half
# the MACs against the FLOPs-driven plan and Torch-Pruning in one interleaved run.
# usage: bench/targets/x8-mbv2/after.sh [BUDGET_S]
set -u
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
D=bench/targets/x8-mbv2; P=$D/cpu-xnnpack-int8.json; C=$D/composed.json
calibrated() { python -c "import json, sys; sys.exit('mobilenet_v2' not in json.load(open('$P'))['calibration'])"; }
for _ in 1 2 3; do calibrated && break; bash $D/run.sh "${1:-3000}"; done
calibrated || { echo "MobileNet-V2 not calibrated yet: run again"; exit 1; }
python bench/targets/dec03b/compose.py cpu-xnnpack-int8 $P mobilenet_v2 $C || exit 1
echo "== check start $(date -u +%H:%M:%S)"
edgeprune profile check cpu-xnnpack-int8 --model mobilenet_v2 --passes 2 --profile $C --json > $D/check-mbv2.json
echo "== plot start $(date -u +%H:%M:%S)"
edgeprune profile plot cpu-xnnpack-int8 --model cifar_resnet56 --model mobilenet_v2 --profile $C --out $D/staircase.png
echo "== planner start $(date -u +%H:%M:%S)"
python tools/bench_planner.py --target cpu-xnnpack-int8 --macs 0.5x --model mobilenet_v2 --peer --profile $C \
  --out $D/planner-mbv2 > $D/planner.log 2>&1
echo "== done rc=$? $(date -u +%H:%M:%S)"
