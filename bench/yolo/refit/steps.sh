set -x
P="--target cpu-ort --profile bench/yolo/cpu-ort-yolov8n.json --measured-rounds 2 --calibration-data runs/yolo/coco256.yaml --json"
flock /tmp/heavy.lock edgeprune prune ultralytics:yolov8n.yaml --pretrained --latency 0.84x $P --out runs/yolo-refit/s1 > runs/yolo-refit/s1.json
flock /tmp/heavy.lock edgeprune eval runs/yolo-refit/s1/model --data runs/yolo/coco256.yaml --input-size 640 --json > runs/yolo-refit/eval-s1.json
flock /tmp/heavy.lock edgeprune prune runs/yolo-refit/s1/model --latency 0.84x $P --out runs/yolo-refit/s2 > runs/yolo-refit/s2.json
flock /tmp/heavy.lock edgeprune eval runs/yolo-refit/s2/model --data runs/yolo/coco256.yaml --input-size 640 --json > runs/yolo-refit/eval-s2.json
flock /tmp/heavy.lock edgeprune prune ultralytics:yolov8n.yaml --pretrained --latency 0.7x $P --out runs/yolo-refit/o7 > runs/yolo-refit/o7.json
flock /tmp/heavy.lock edgeprune eval runs/yolo-refit/o7/model --data runs/yolo/coco256.yaml --input-size 640 --json > runs/yolo-refit/eval-o7.json
flock /tmp/heavy.lock edgeprune validate ultralytics:yolov8n.yaml --pretrained runs/yolo-refit/s2/model --target cpu-ort --profile bench/yolo/cpu-ort-yolov8n.json --out runs/yolo-refit/validate-s2 --json > runs/yolo-refit/validate-s2.json
bash runs/yolo-refit/uniform.sh
