set -x
P="--target cpu-ort --profile bench/yolo/cpu-ort-yolov8n.json --measured-rounds 4 --calibration-data runs/yolo/coco256.yaml --json"
/usr/bin/time -f "%e s" flock /tmp/heavy.lock edgeprune prune ultralytics:yolov8n.yaml --pretrained --latency 0.7x --steps 3 $P --out runs/yolo-refit/steps3b-0.7x > runs/yolo-refit/steps3b-0.7x.json
flock /tmp/heavy.lock edgeprune eval runs/yolo-refit/steps3b-0.7x/model --data runs/yolo/coco256.yaml --input-size 640 --json > runs/yolo-refit/eval-steps3b-0.7x.json
flock /tmp/heavy.lock edgeprune validate ultralytics:yolov8n.yaml --pretrained runs/yolo-refit/steps3b-0.7x/model --target cpu-ort --profile bench/yolo/cpu-ort-yolov8n.json --out runs/yolo-refit/validate-steps3b-0.7x --json > runs/yolo-refit/validate-steps3b-0.7x.json
