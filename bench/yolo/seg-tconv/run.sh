#!/usr/bin/env bash
# YOLOv8n-seg (random weights, 640²) at half the MACs on cpu-ort, default settings, planned with the prototypes'
# upsampling (a ConvTranspose2d) frozen (the code of 29fdb0b, in a git worktree) and pruned (this code), then the
# two plans and the dense model timed in one interleaved run (three runs: one with dense as the base, two with
# the frozen-prototype plan as the base).
set -euo pipefail
out=${OUT:-runs/seg-tconv}
git worktree add -f "$out/old" 29fdb0b
(cd "$out/old" && PYTHONPATH=. python -m edgeprune.cli prune ultralytics:yolov8n-seg.yaml --target cpu-ort --macs 0.5x --out "../frozen")
edgeprune prune ultralytics:yolov8n-seg.yaml --target cpu-ort --macs 0.5x --out "$out/pruned"
d=bench/yolo/seg-tconv
python tools/bench_latency.py $d/yolov8n-seg-0.5x-2026-12-07.json --target cpu-ort --input-size 640 \
  --model ultralytics:yolov8n-seg.yaml --model "$out/frozen/model" --model "$out/pruned/model"
for run in old-base old-base-run2; do
  python tools/bench_latency.py $d/yolov8n-seg-0.5x-$run-2026-12-07.json --target cpu-ort --input-size 640 \
    --model "$out/frozen/model" --model "$out/pruned/model" --model ultralytics:yolov8n-seg.yaml
done
