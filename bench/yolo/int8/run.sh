#!/usr/bin/env bash
# YOLOv8n pruned for cpu-ort-int8 and deployed in int8, scored on the 128 coco256 val images:
# 1. prune under a 0.8x latency budget measured in int8 on this machine, the layers after each cut refitted to
#    the dense outputs on coco256's train images (no labels);
# 2. validate against the pretrained dense model on cpu-ort-int8 at 640: mAP50-95 of both in torch and of both
#    quantized artifacts in onnxruntime (calibrated on the 128 train images), the speedup over dense int8 and
#    over dense fp32 on the same runtime, timed in one interleaved run;
# 3. fine-tune with distillation from the dense model (10 epochs at TRAIN_SIZE, batch 16), validate again at 640.
# usage: bench/yolo/int8/run.sh [TRAIN_SIZE] [TAG]    (steps whose output exists are skipped)
#   TRAIN_SIZE: the fine-tune's input side (default 320); TAG: a suffix for this run's files (default none)
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
S=${1:-320}; T=${2:-}
R=runs/yolo-int8$T; D=bench/yolo/int8; P=bench/yolo/cpu-ort-int8-yolov8n.json; M=ultralytics:yolov8n.yaml
DATA=${EDGEPRUNE_DATA:-../shared/data}
mkdir -p $R
Y=$R/coco256.yaml
sed "s#^path: .*#path: $(realpath "$DATA/coco256")#" "$DATA/coco256/coco256.yaml" > $Y
step() { echo "== $1 $(date -u +%H:%M:%S)"; }
# validate exits 4 when the measured speedup misses the profile's prediction: that is a result here, not an error
gated() { "$@" || { rc=$?; [ $rc -eq 4 ] && echo "gate failed (exit 4): see the report" >&2 || return $rc; }; }
V="--target cpu-ort-int8 --profile $P --data $Y --calibration-count 128 --input-size 640 --json"
step prune
[ -d $R/p-0.8x ] || edgeprune prune $M --pretrained --target cpu-ort-int8 --profile $P --latency 0.8x \
  --measured-rounds 2 --calibration-data $Y --out $R/p-0.8x --json > $D/prune-0.8x$T.json
step validate
[ -f $D/validate-0.8x$T.json ] || gated edgeprune validate $M --pretrained $R/p-0.8x/model $V --out $R/v-0.8x > $D/validate-0.8x$T.json
step finetune
[ -d $R/kd10-0.8x ] || edgeprune train $R/p-0.8x/model --data $Y --reg none --epochs 10 --input-size $S \
  --batch-size 16 --distill $M --out $R/kd10-0.8x > $R/kd10-0.8x.log 2>&1
step validate-finetuned
[ -f $D/validate-kd10-0.8x$T.json ] || gated edgeprune validate $M --pretrained $R/kd10-0.8x/model $V --out $R/v-kd10-0.8x \
  > $D/validate-kd10-0.8x$T.json
step done
