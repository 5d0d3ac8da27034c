#!/usr/bin/env bash
# MobileNet-V2's tables added to a copy of the shipped cpu-xnnpack-int8 profile. Each point is its own PT2E
# quantization and XNNPACK lowering: the first table (212 points) took 18 min, so all 16 (about 2,600
# points) take about 4 h. Resumable: finished tables are kept in cpu-xnnpack-int8.partial.json (committed
# with `git add -f`), and the next run starts from them. usage: bench/targets/x8-mbv2/run.sh [BUDGET_S]
set -u
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
D=bench/targets/x8-mbv2
echo "== measure start $(date -u +%H:%M:%S)"
edgeprune profile measure cpu-xnnpack-int8 --model mobilenet_v2 --out $D/cpu-xnnpack-int8.json \
  --budget-s "${1:-5400}" >> $D/measure.log 2>&1
echo "== measure rc=$? end $(date -u +%H:%M:%S)"
