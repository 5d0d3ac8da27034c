#!/usr/bin/env bash
# Does a calibration term that the planner ranks cuts by make its plans slower? Two profiles with the same
# tables and stored runs, one whose MobileNet-V2 line has a MACs term and one with the plain line, plan
# MobileNet-V2 at half the MACs; both plans, the other shapes and Torch-Pruning's are timed in one
# interleaved run (MACs budget: the calibration changes the ranking only, not where the plan stops).
#   bash bench/targets/rank/run.sh TARGET WITH_TERM PLAIN_LINE NAME
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
T=$1; WITH=$2; PLAIN=$3; NAME=$4
D=bench/targets/rank
python tools/bench_planner.py --target $T --macs 0.5x --model mobilenet_v2 --peer --profile $WITH \
  --also-profile $PLAIN --out $D/planner-$NAME.json 2>&1 | grep -v Warning | tee $D/planner-$NAME.md
