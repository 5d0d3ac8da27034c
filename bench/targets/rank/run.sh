#!/usr/bin/env bash
# Ranked by the tables, priced by the calibration (2026-12-06). At half the MACs, the latency-driven plan of a
# profile and of a second one, the other plan shapes and Torch-Pruning's, timed in one interleaved run:
#   [D=FOLDER] bash bench/targets/rank/run.sh TARGET MODEL PROFILE ALSO_PROFILE|- NAME [more bench_planner flags]
# (a MACs budget: the calibration changes the ranking and the price, not where the plan stops)
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
T=$1; M=$2; P=$3; ALSO=$4; NAME=$5; shift 5
D=${D:-bench/targets/rank}  # where the table goes
[ "$ALSO" = - ] && A="" || A="--also-profile $ALSO"  # "-": no second profile
python tools/bench_planner.py --target $T --macs 0.5x --model $M --peer --profile $P $A \
  --out $D/planner-$NAME.json "$@" 2>&1 | grep -v -E "Warning|cpuinfo|it/s" > $D/planner-$NAME.md
