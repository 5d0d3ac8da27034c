#!/usr/bin/env bash
# Another target measured on this VM's own CPU (Intel Xeon; the shipped profiles are an AMD EPYC's): ResNet-56's
# tables and calibration, then its plans at half the MACs from both profiles, Torch-Pruning's and the speed
# ceiling, timed in one run.
#   bash bench/targets/intel/run-target.sh TARGET     (steps whose output exists are skipped)
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
T=${1:?TARGET}
D=bench/targets/intel
P=$D/$T--intel-xeon-2c.json
step() { echo "== $1 $(date -u +%H:%M:%S)"; }
step measure
[ -f $P ] || edgeprune profile measure $T --model cifar_resnet56 --out $P
step planner
[ -f $D/planner-$T-r56.json ] || python tools/bench_planner.py --target $T --macs 0.5x --model cifar_resnet56 \
  --pretrained --peer --ceiling --profile $P --also-profile edgeprune/resources/profiles/$T--amd-epyc-2c.json \
  --out $D/planner-$T-r56.json
step done
# then with the in-network width corrections fitted on this VM (FIT=1)
if [ "${FIT:-0}" = 1 ]; then
  step fit
  [ -f ${P%.json}-widths.json ] || edgeprune profile fit $T widths --model cifar_resnet56 --profile $P --out ${P%.json}-widths.json
  step planner-widths
  [ -f $D/planner-$T-r56-widths.json ] || python tools/bench_planner.py --target $T --macs 0.5x --model cifar_resnet56 \
    --pretrained --peer --ceiling --profile ${P%.json}-widths.json --also-profile $P --out $D/planner-$T-r56-widths.json
  step done
fi
