set -x
P="--target cpu-ort --profile bench/yolo/cpu-ort-yolov8n.json --measured-rounds 4 --calibration-data runs/yolo/coco256.yaml --json"
for N in 3 4; do
  /usr/bin/time -f "%e s" flock /tmp/heavy.lock edgeprune prune ultralytics:yolov8n.yaml --pretrained --latency 0.7x --steps $N $P --out runs/yolo-refit/steps$N-0.7x > runs/yolo-refit/steps$N-0.7x.json
  flock /tmp/heavy.lock edgeprune eval runs/yolo-refit/steps$N-0.7x/model --data runs/yolo/coco256.yaml --input-size 640 --json > runs/yolo-refit/eval-steps$N-0.7x.json
  flock /tmp/heavy.lock edgeprune validate ultralytics:yolov8n.yaml --pretrained runs/yolo-refit/steps$N-0.7x/model --target cpu-ort --profile bench/yolo/cpu-ort-yolov8n.json --out runs/yolo-refit/validate-steps$N-0.7x --json > runs/yolo-refit/validate-steps$N-0.7x.json
done
