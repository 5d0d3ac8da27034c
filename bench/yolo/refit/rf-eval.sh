set -x
for P in cal2-0.8x cal-0.7x; do
  flock /tmp/heavy.lock edgeprune eval /tmp/rf-$P/model --data runs/yolo/coco256.yaml --input-size 640 --json > runs/yolo-refit/eval-refit-$P.json
done
