#!/usr/bin/env bash
# Models no other benchmark covers, planned as a user would: profile them on this machine's cpu-ort, then
# edgeprune's plan shapes, the speed ceiling and Torch-Pruning's two plans at half the MACs, one interleaved
# run per model. Random weights (seeded), registry input sizes.
set -euo pipefail
here=bench/planner-peer/unbenchmarked
models=(mobilenet_v3_large timm:efficientnet_b0 resnet18)
args=(); for m in "${models[@]}"; do args+=(--model "$m"); done
[ -f "$here/profile-cpu-ort.json" ] || edgeprune profile measure cpu-ort "${args[@]}" --out "$here/profile-cpu-ort.json"
python tools/bench_planner.py --target cpu-ort --macs 0.5x --peer --ceiling --rounds "${ROUNDS:-3}" \
  --profile "$here/profile-cpu-ort.json" "${args[@]}" --out "$here/planner.json"
edgeprune profile check cpu-ort --model mobilenet_v3_large --model timm:efficientnet_b0 --model resnet18 --passes 2 --profile $here/profile-cpu-ort.json --json > $here/check-2pass.json
