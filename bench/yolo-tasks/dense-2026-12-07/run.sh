#!/usr/bin/env bash
# YOLO26's depth and semantic-segmentation models (random weights), pruned to half the MACs at 320² on cpu-ort
# and validated there (the two models timed in alternating rounds). No task metric: edgeprune does not train
# or score these tasks.
set -euo pipefail
out=${OUT:-runs/yolo-dense}
for m in depth sem; do
  edgeprune prune "ultralytics:yolo26n-$m.yaml" --target cpu-ort --macs 0.5x --input-size 320 --out "$out/$m"
  edgeprune validate "ultralytics:yolo26n-$m.yaml" "$out/$m" --target cpu-ort --out "$out/$m-val"
  cp "$out/$m-val/report.md" "bench/yolo-tasks/dense-2026-12-07/yolo26n-$m-report.md"
  cp "$out/$m-val/report.json" "bench/yolo-tasks/dense-2026-12-07/yolo26n-$m-report.json"
  cp "$out/$m/plan.md" "bench/yolo-tasks/dense-2026-12-07/yolo26n-$m-plan.md"
done
