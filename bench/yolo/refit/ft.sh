set -x
E="--data runs/yolo/coco256.yaml --input-size 640 --json"
flock /tmp/heavy.lock edgeprune eval runs/yolo-refit/uniform8-0.28/model $E > runs/yolo-refit/eval-uniform8-0.28.json
flock /tmp/heavy.lock edgeprune validate runs/yolo-refit/uniform8-0.28/model runs/yolo-refit/s2/model --target cpu-ort --profile bench/yolo/cpu-ort-yolov8n.json --out runs/yolo-refit/validate-s2-vs-uniform8-0.28 --json > runs/yolo-refit/validate-s2-vs-uniform8-0.28.json
for M in s2 uniform8-0.28; do
  /usr/bin/time -f "%e s" flock /tmp/heavy.lock edgeprune train runs/yolo-refit/$M/model --data runs/yolo/coco256.yaml --reg none --epochs 10 --input-size 320 --batch-size 16 --distill ultralytics:yolov8n.yaml --out runs/yolo-refit/kd10-$M
  flock /tmp/heavy.lock edgeprune eval runs/yolo-refit/kd10-$M/model $E > runs/yolo-refit/eval-kd10-$M.json
done
