#!/usr/bin/env bash
# YOLOv8n pruned to 0.7x of its cpu-ort latency (channels only, two refitted steps, as bench/yolo/branches),
# then fine-tuned with distillation from the dense model at 640 (the size it is scored at) instead of 320:
# does a fine-tune at the deployed size recover what the 320 one lost?
#   bash bench/yolo/finetune-640/run.sh [BUDGET] [EPOCHS] [LR]     (steps whose output exists are skipped)
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
B=${1:-0.7x}; N=${2:-15}; LR=${3:-1e-4}; M=ultralytics:yolov8n.yaml; R=runs/yolo-ft640; D=bench/yolo/finetune-640
DATA=${EDGEPRUNE_DATA:-../shared/data}
mkdir -p $R
Y=$R/coco256.yaml
sed "s#^path: .*#path: $(realpath "$DATA/coco256")#" "$DATA/coco256/coco256.yaml" > $Y
PR="--target cpu-ort --profile bench/yolo/cpu-ort-yolov8n.json"
E="--data $Y --input-size 640 --json"
step() { echo "== $1 $(date -u +%H:%M:%S)"; }
step prune
[ -d $R/p-$B ] || edgeprune prune $M --pretrained --latency $B --steps 2 --measured-rounds 4 $PR \
  --calibration-data $Y --json --out $R/p-$B > $D/prune-$B.json
step eval
[ -f $D/eval-$B.json ] || edgeprune eval $R/p-$B/model $E > $D/eval-$B.json
step finetune
K=kd$N-lr$LR-$B
[ -d $R/$K ] || /usr/bin/time -f "%e s" edgeprune train $R/p-$B/model --data $Y --reg none --epochs $N \
  --lr $LR --input-size 640 --batch-size 16 --distill $M --out $R/$K > $D/$K.log 2>&1
step eval-finetuned
[ -f $D/eval-$K.json ] || edgeprune eval $R/$K/model $E > $D/eval-$K.json
step done
