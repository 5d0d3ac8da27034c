set -x
P="--target cpu-ort --profile bench/yolo/cpu-ort-yolov8n.json --measured-rounds 4 --calibration-data runs/yolo/coco256.yaml --json"
/usr/bin/time -f "%e s" flock /tmp/heavy.lock edgeprune prune ultralytics:yolov8n.yaml --pretrained --latency 0.6x --steps 2 $P --out runs/yolo-refit/steps2-0.6x > runs/yolo-refit/steps2-0.6x.json
flock /tmp/heavy.lock edgeprune eval runs/yolo-refit/steps2-0.6x/model --data runs/yolo/coco256.yaml --input-size 640 --json > runs/yolo-refit/eval-steps2-0.6x.json
flock /tmp/heavy.lock edgeprune validate ultralytics:yolov8n.yaml --pretrained runs/yolo-refit/steps2-0.6x/model --target cpu-ort --profile bench/yolo/cpu-ort-yolov8n.json --out runs/yolo-refit/validate-steps2-0.6x --json > runs/yolo-refit/validate-steps2-0.6x.json
