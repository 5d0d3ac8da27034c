#!/usr/bin/env bash
# A COCO-pretrained YOLO at half the MACs: edgeprune's plans (its default, and with calibration images: ranked
# by measured output change, removed channels folded and the next layers refitted) against Torch-Pruning's,
# mAP50-95 (torch, fp32) on the 128 coco256 val images before fine-tuning, all timed in one interleaved run on
# TARGET (default cpu-ort; an int8 target quantizes each model for timing) at 640.
#   [TARGET=T] [PROFILE=FILE] [OUT=DIR] [TAG=-NAME] bash bench/yolo/peer/run.sh [yolov8n|yolo11n]
# (EDGEPRUNE_DATA: the shared data folder; the bench extra). PROFILE: the model's profile to plan with (default
# bench/yolo/TARGET-MODEL.json where it exists); OUT: where the pruned models go (default runs/yolo-peer);
# TAG: appended to the result's file name.
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
M=${1:-yolov8n}; T=${TARGET:-cpu-ort}; D=bench/yolo/peer; R=${OUT:-runs/yolo-peer}/$M-$T; DATA=${EDGEPRUNE_DATA:-../shared/data}
mkdir -p $R
Y=$R/coco256.yaml
sed "s#^path: .*#path: $(realpath $DATA/coco256)#" $DATA/coco256/coco256.yaml > $Y
P="--pretrained --target $T --macs 0.5x"
PROFILE=${PROFILE:-bench/yolo/$T-$M.json}
[ -f "$PROFILE" ] && P="$P --profile $PROFILE"
[ -d $R/default ] || edgeprune prune ultralytics:$M.yaml $P --out $R/default
[ -d $R/calibrated ] || edgeprune prune ultralytics:$M.yaml $P --calibration-data $Y --out $R/calibrated
python $D/compare.py --model ultralytics:$M.yaml --data $Y --plan "edgeprune default=$R/default/model" \
  --plan "edgeprune, calibration images=$R/calibrated/model" --target $T --out $D/$M-$T-0.5x-$(date -u +%F)${TAG:-}
