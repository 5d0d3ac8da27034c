#!/usr/bin/env bash
# YOLOv8n at 640² on cpu-xnnpack (ExecuTorch + XNNPACK, fp32): measure its profile (resumable: run again to
# continue a partial one), then plan at half the MACs and time every plan with the dense model in one
# interleaved run.
# usage: bench/yolo/xnnpack/run.sh [BUDGET_S]
set -u
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
D=bench/yolo/xnnpack; P=$D/cpu-xnnpack-yolov8n.json; M=ultralytics:yolov8n.yaml
calibrated() { python -c "import json, sys; sys.exit('$M' not in json.load(open('$P'))['calibration'])" 2>/dev/null; }
if ! calibrated; then
  echo "== measure start $(date -u +%H:%M:%S)"
  edgeprune profile measure cpu-xnnpack --model $M --out $P --budget-s "${1:-4200}" || { echo "== measure stopped rc=$? $(date -u +%H:%M:%S)"; exit 1; }
fi
echo "== planner start $(date -u +%H:%M:%S)"
python tools/bench_planner.py --target cpu-xnnpack --macs 0.5x --model $M --pretrained --profile $P --rounds 2 \
  --out $D/planner-yolov8n-0.5x.json
echo "== done rc=$? $(date -u +%H:%M:%S)"
