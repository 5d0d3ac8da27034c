set -x
P="--target cpu-ort --profile bench/yolo/cpu-ort-yolo11n.json --measured-rounds 4 --calibration-data runs/yolo/coco256.yaml --json"
/usr/bin/time -f "%e s" flock /tmp/heavy.lock edgeprune prune ultralytics:yolo11n.yaml --pretrained --latency 0.8x --steps 2 $P --out runs/yolo-refit/y11-steps2-0.8x > runs/yolo-refit/y11-steps2-0.8x.json
flock /tmp/heavy.lock edgeprune eval runs/yolo-refit/y11-steps2-0.8x/model --data runs/yolo/coco256.yaml --input-size 640 --json > runs/yolo-refit/eval-y11-steps2-0.8x.json
flock /tmp/heavy.lock edgeprune validate ultralytics:yolo11n.yaml --pretrained runs/yolo-refit/y11-steps2-0.8x/model --target cpu-ort --profile bench/yolo/cpu-ort-yolo11n.json --out runs/yolo-refit/validate-y11-steps2-0.8x --json > runs/yolo-refit/validate-y11-steps2-0.8x.json
