#!/usr/bin/env bash
# ResNet-56 with random weights ran 0.91x Torch-Pruning's global plan on a profile without in-network width
# corrections (bench/planner-peer/normalization/planner-r56-random-weights.md). Does the width fit change that?
# Fit the widths on a copy of that profile, then time the plans of both profiles in one interleaved run beside
# Torch-Pruning's and the speed ceiling. Steps whose output exists are skipped.
#   bash bench/planner-peer/random-weights/run.sh       (2026-12-05, this VM's cpu-ort)
set -euo pipefail
here=bench/planner-peer/random-weights
base=bench/predictor/planned-calibration/profile-cpu-ort.json
fitted=$here/profile-cpu-ort-widths.json
if [ ! -f "$fitted" ]; then
  cp "$base" "$here/widths.tmp.json"
  edgeprune profile fit cpu-ort widths --model cifar_resnet56 --profile "$here/widths.tmp.json" > "$here/fit-r56.txt"
  mv "$here/widths.tmp.json" "$fitted"
fi
[ -f "$here/planner-r56.json" ] || python tools/bench_planner.py --macs 0.5x --peer --ceiling --rounds 3 \
  --profile "$fitted" --also-profile "$base" --model cifar_resnet56 --out "$here/planner-r56.json"
