#!/usr/bin/env bash
# YOLOv8n at one latency budget, in two refitted steps, channels only against whole C2f bottlenecks allowed to
# go (--remove-branches): prune, eval at 640, validate each against dense and the two against each other in
# one run, then the same distilled fine-tune (10 epochs at 320) and eval again.
#   bash bench/yolo/branches/run.sh 0.7x
set -ex
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
B=${1:-0.7x}; M=ultralytics:yolov8n.yaml; R=runs/yolo-branches; D=bench/yolo/branches
mkdir -p runs/yolo $R
sed "s#^path: .*#path: $(realpath ../shared/data/coco256)#" ../shared/data/coco256/coco256.yaml > runs/yolo/coco256.yaml
PR="--target cpu-ort --profile bench/yolo/cpu-ort-yolov8n.json"
E="--data runs/yolo/coco256.yaml --input-size 640 --json"
for X in ch br; do
  EXTRA=""; [ $X = br ] && EXTRA="--remove-branches"
  /usr/bin/time -f "%e s" edgeprune prune $M --pretrained --latency $B --steps 2 --measured-rounds 4 $EXTRA $PR \
    --calibration-data runs/yolo/coco256.yaml --json --out $R/$X-$B > $D/prune-$X-$B.json
  edgeprune eval $R/$X-$B/model $E > $D/eval-$X-$B.json
  edgeprune validate $M --pretrained $R/$X-$B/model $PR --out $R/validate-$X-$B --json > $D/validate-$X-$B.json
done
edgeprune validate $R/ch-$B/model $R/br-$B/model $PR --out $R/validate-br-vs-ch-$B --json > $D/validate-br-vs-ch-$B.json
for X in ch br; do
  /usr/bin/time -f "%e s" edgeprune train $R/$X-$B/model --data runs/yolo/coco256.yaml --reg none --epochs 10 \
    --input-size 320 --batch-size 16 --distill $M --out $R/kd10-$X-$B
  edgeprune eval $R/kd10-$X-$B/model $E > $D/eval-kd10-$X-$B.json
done
echo done $(date -u)
