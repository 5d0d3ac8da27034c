set -x
for R in 0.25 0.28 0.31; do
  python -c "import sys; sys.path.insert(0, 'tools'); from pathlib import Path; from bench_yolo import uniform_plan_file; uniform_plan_file('ultralytics:yolov8n.yaml', $R, 640, Path('runs/yolo-refit/uniform8-$R.plan.json'))"
  flock /tmp/heavy.lock edgeprune prune ultralytics:yolov8n.yaml --pretrained --plan runs/yolo-refit/uniform8-$R.plan.json --out runs/yolo-refit/uniform8-$R --json > runs/yolo-refit/uniform8-$R.json
  flock /tmp/heavy.lock edgeprune validate ultralytics:yolov8n.yaml --pretrained runs/yolo-refit/uniform8-$R/model --target cpu-ort --profile bench/yolo/cpu-ort-yolov8n.json --out runs/yolo-refit/validate-uniform8-$R --json > runs/yolo-refit/validate-uniform8-$R.json
done
