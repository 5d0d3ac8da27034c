#!/usr/bin/env bash
# YOLOv8n profiled on this VM's CPU for TARGET (default cpu-ort) as a user profiles their own detector: tables with
# the shuffled two-pass sweep, the calibration on uniform, random and the planner's own plans; then the predictor
# checked on five random plans (two passes) and on the plan `prune --macs 0.5x` makes, and the same timings
# predicted with the profile measured on 2026-12-03 (bench/yolo/TARGET-yolov8n.json). Writes into this folder.
#   [TARGET=T] bash bench/yolo/zen4/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
T=${TARGET:-cpu-ort}; D=bench/yolo/zen4; P=$D/$T-yolov8n.json; M=ultralytics:yolov8n.yaml
date -u +"start %H:%M:%S"
[ -f "$P" ] || edgeprune profile measure "$T" --model $M --out "$P"
date -u +"profile %H:%M:%S"
if [ ! -f "$D/check-$T-yolov8n.json" ]; then
  edgeprune profile check "$T" --model $M --profile "$P" --plans 5 --passes 2 --planned-macs 0.5x --json > "$D/check-$T.tmp"
  mv "$D/check-$T.tmp" "$D/check-$T-yolov8n.json"
fi
date -u +"check %H:%M:%S"
python $D/replay.py "$T" "$D/check-$T-yolov8n.json" "$P" "bench/yolo/$T-yolov8n.json" > "$D/replay-$T-yolov8n.md"
cat "$D/replay-$T-yolov8n.md"
