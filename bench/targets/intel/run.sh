#!/usr/bin/env bash
# cpu-ort measured on this VM's own CPU (an Intel Xeon; the shipped profile is an AMD EPYC's), then ResNet-56's
# plans at half the MACs from both profiles, Torch-Pruning's and the speed ceiling, timed in one run.
#   bash bench/targets/intel/run.sh        (steps whose output exists are skipped)
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
D=bench/targets/intel
P=$D/cpu-ort--intel-xeon-2c.json
step() { echo "== $1 $(date -u +%H:%M:%S)"; }
step measure
[ -f $P ] || edgeprune profile measure cpu-ort --model cifar_resnet56 --out $P.tmp.json
[ -f $P ] || edgeprune profile fit cpu-ort widths --model cifar_resnet56 --profile $P.tmp.json --out $P
rm -f $P.tmp.json
step planner
[ -f $D/planner-r56.json ] || python tools/bench_planner.py --target cpu-ort --macs 0.5x --model cifar_resnet56 \
  --pretrained --peer --ceiling --profile $P --also-profile edgeprune/resources/profiles/cpu-ort--amd-epyc-2c.json \
  --out $D/planner-r56.json
step check
[ -f $D/check-r56.json ] || edgeprune profile check cpu-ort --model cifar_resnet56 --profile $P --plans 8 --json \
  > $D/check-r56.json
step done
