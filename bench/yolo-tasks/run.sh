#!/usr/bin/env bash
# Ultralytics pose, OBB and YOLO26 segmentation models (random init: timing only, no task metric) pruned to half
# the MACs by `edgeprune prune` (no profile has their layers: the uniform cut on the channel blocking) and validated
# as deployed on four targets at 320², int8 calibrated on 32 coco256 train images. One process per run;
# report.json per (model, target) in $OUT (default /tmp/yolo-tasks), one line each in results-<date>.jsonl here.
#   bash bench/yolo-tasks/run.sh          (EDGEPRUNE_DATA: the shared data folder)
set -u
cd "$(dirname "$0")/../.."
source .venv/bin/activate
D=bench/yolo-tasks; O=${OUT:-/tmp/yolo-tasks}; DATA=${EDGEPRUNE_DATA:-../shared/data}
CAL=$DATA/coco256/images/train2017
RESULTS=$D/results-$(date -u +%F).jsonl
mkdir -p $O; : > $RESULTS.part
for M in yolov8n-pose yolo26n-pose yolo11n-obb yolo26n-obb yolo26n-seg; do
  edgeprune prune ultralytics:$M.yaml --target cpu-ort --macs 0.5x --input-size 320 --out $O/$M > $O/$M.prune.log 2>&1 \
    || { echo "{\"model\": \"$M\", \"error\": \"prune failed\"}" >> $RESULTS.part; continue; }
  for T in cpu-ort cpu-ort-int8 cpu-openvino-int8 cpu-xnnpack-int8; do
    echo "== $M $T $(date -u +%H:%M:%S)"
    C=""; [[ $T == *int8 ]] && C="--calibration-data $CAL --calibration-count 32"
    if edgeprune validate ultralytics:$M.yaml $O/$M --target $T --input-size 320 $C --out $O/$M-$T > $O/$M-$T.log 2>&1; then
      python $D/summarize.py $M $T $O/$M-$T/report.json >> $RESULTS.part
    else
      echo "{\"model\": \"$M\", \"target\": \"$T\", \"error\": \"$(tail -1 $O/$M-$T.log | tr -d '"')\"}" >> $RESULTS.part
    fi
  done
done
mv $RESULTS.part $RESULTS
echo "== done $(date -u +%H:%M:%S)"
