#!/usr/bin/env bash
# The 17:26 comparison again, on the code before the change (839480a, where the planner ranked with the MACs
# term), in a worktree: MobileNet-V2 at half the MACs on cpu-xnnpack, the MACs-term profile's plan beside the same
# tables' plain-line plan and Torch-Pruning's, one interleaved run.
#   git worktree add /tmp/old 839480a && bash bench/targets/rank/repeat-before.sh
set -eu
R=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$R/../../.." && pwd)
cd /tmp/old
PYTHONPATH=/tmp/old $ROOT/.venv/bin/python tools/bench_planner.py --target cpu-xnnpack --macs 0.5x --model mobilenet_v2 \
  --peer --profile bench/targets/macs/settled/cpu-xnnpack--amd-epyc-2c.json \
  --also-profile bench/targets/xnnpack-sessions/cpu-xnnpack--amd-epyc-2c-settled.json \
  --out $R/planner-before-repeat.json 2>&1 | grep -v -E "Warning|cpuinfo|it/s" > $R/planner-before-repeat.md
