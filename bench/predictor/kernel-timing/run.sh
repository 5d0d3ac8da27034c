#!/usr/bin/env bash
# Layer tables timed by onnxruntime's own profiler (kernel time, no layout reorders) instead of the wall clock,
# on two depthwise networks whose wall-timed profiles mispredict random plans: profile, then the predictor
# check (random plans and the planner's 0.5x plan, two passes) and the plan shapes at half the MACs.
#   bash bench/predictor/kernel-timing/run.sh     (steps whose output exists are skipped)
set -euo pipefail
here=bench/predictor/kernel-timing
args=(--model mnasnet1_0 --model mobilenet_v3_large)
[ -f "$here/profile.json" ] || edgeprune profile measure cpu-ort "${args[@]}" --layer-timing kernel --out "$here/profile.json"
if [ ! -f "$here/check.json" ]; then
  edgeprune profile check cpu-ort "${args[@]}" --passes 2 --planned-macs 0.5x --profile "$here/profile.json" --json > "$here/check.tmp"
  mv "$here/check.tmp" "$here/check.json"
fi
[ -f "$here/planner.json" ] || python tools/bench_planner.py --target cpu-ort --macs 0.5x --ceiling --rounds 3 \
  --profile "$here/profile.json" "${args[@]}" --out "$here/planner.json"
