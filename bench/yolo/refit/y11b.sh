# YOLO11n at 0.8x: uniform magnitude plans (round to 8) near the two-step plan's measured speed, then both
# (and the dense model) fine-tuned the same way (10 epochs at 320, distilled from the dense model) and evaluated.
cd /work/main && source .venv/bin/activate
set -x
while kill -0 $(head -1 runs/prof/chain3.pid) 2>/dev/null; do sleep 10; done
M=ultralytics:yolo11n.yaml; PR="--target cpu-ort --profile bench/yolo/cpu-ort-yolo11n.json"
R=runs/yolo-refit; E="--data runs/yolo/coco256.yaml --input-size 640 --json"
for U in 0.15 0.2 0.25; do
  python -c "import sys; sys.path.insert(0, 'tools'); from pathlib import Path; from bench_yolo import uniform_plan_file; uniform_plan_file('$M', $U, 640, Path('$R/y11-uniform8-$U.plan.json'))"
  flock /tmp/heavy.lock edgeprune prune $M --pretrained --plan $R/y11-uniform8-$U.plan.json --out $R/y11-uniform8-$U --json > $R/y11-uniform8-$U.json
  flock /tmp/heavy.lock edgeprune validate $M --pretrained $R/y11-uniform8-$U/model $PR --out $R/validate-y11-uniform8-$U --json > $R/validate-y11-uniform8-$U.json
done
U=$(python - <<'PY'
import json
s = lambda p: json.load(open(p))["derived"]["measured_speedup"]
ours = s("bench/yolo/refit/validate-y11-steps2-0.8x.json")
print(min(("0.15", "0.2", "0.25"), key=lambda u: abs(s(f"runs/yolo-refit/validate-y11-uniform8-{u}.json") / ours - 1)))
PY
)
echo chosen $U
flock /tmp/heavy.lock edgeprune validate $R/y11-uniform8-$U/model $R/y11-steps2-0.8x/model $PR --out $R/validate-y11-s2-vs-uniform8-$U --json > $R/validate-y11-s2-vs-uniform8-$U.json
flock /tmp/heavy.lock edgeprune eval $R/y11-uniform8-$U/model $E > $R/eval-y11-uniform8-$U.json
for X in y11-steps2-0.8x y11-uniform8-$U; do
  /usr/bin/time -f "%e s" flock /tmp/heavy.lock edgeprune train $R/$X/model --data runs/yolo/coco256.yaml --reg none --epochs 10 --input-size 320 --batch-size 16 --distill $M --out $R/kd10-$X
  flock /tmp/heavy.lock edgeprune eval $R/kd10-$X/model $E > $R/eval-kd10-$X.json
done
echo done $(date -u)
