#!/usr/bin/env bash
# YOLOv8n-seg through the pipeline on coco256 with box-rectangle masks (make_data.py says why): the mask head
# trained from the detection checkpoint (the dense model), its cpu-ort profile at 640, a latency-budget plan in
# two refitted steps, validated against dense, then the pruned model and the dense one fine-tuned alike
# (10 epochs at 320, the pruned one distilled from dense) and scored at 640 (box and mask mAP).
#   bash bench/yolo/seg/run.sh 0.7x
set -ex
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
B=${1:-0.7x}; M=ultralytics:yolov8n-seg.yaml; R=runs/yolo-seg; D=bench/yolo/seg; DATA=runs/yolo/coco256-seg.yaml
P=$D/cpu-ort-yolov8n-seg.json; PR="--target cpu-ort --profile $P"; E="--data $DATA --input-size 640 --json"
T="--reg none --epochs 10 --input-size 320 --batch-size 16"
mkdir -p $R
[ -f $DATA ] || python $D/make_data.py ../shared/data/coco256 runs/yolo/coco256-seg
if [ ! -d $R/dense/model ]; then
  /usr/bin/time -f "%e s" edgeprune train $M --pretrained --data $DATA $T --out $R/dense
  edgeprune eval $R/dense/model $E > $D/eval-dense.json
fi
if [ ! -f $P ]; then  # the detector's tables are reused; the mask head's geometries and the line are new
  cp bench/yolo/cpu-ort-yolov8n.json $P.tmp
  /usr/bin/time -f "%e s" edgeprune profile measure cpu-ort --model $M --out $P.tmp
  mv $P.tmp $P
fi
/usr/bin/time -f "%e s" edgeprune prune $R/dense/model --input-size 640 --latency $B --steps 2 --measured-rounds 4 $PR \
  --calibration-data $DATA --json --out $R/ch-$B > $D/prune-$B.json
edgeprune eval $R/ch-$B/model $E > $D/eval-pruned-$B.json
edgeprune validate $M --pretrained $R/ch-$B/model $PR --out $R/validate-$B --json > $D/validate-$B.json
/usr/bin/time -f "%e s" edgeprune train $R/ch-$B/model --data $DATA $T --distill $R/dense/model --out $R/kd10-$B
edgeprune eval $R/kd10-$B/model $E > $D/eval-kd10-$B.json
if [ ! -d $R/dense-ft10/model ]; then
  edgeprune train $R/dense/model --data $DATA $T --out $R/dense-ft10
  edgeprune eval $R/dense-ft10/model $E > $D/eval-dense-ft10.json
fi
echo done $(date -u)
