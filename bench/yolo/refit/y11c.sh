# YOLO11n at 0.6x: two refitted latency steps, then uniform magnitude plans (round to 8) near its measured speed,
# the closest one timed against it in one run; both fine-tuned the same way (10 epochs at 320, distilled from
# the dense model) and evaluated at 640.
cd /work/main && source .venv/bin/activate
set -x
M=ultralytics:yolo11n.yaml; PR="--target cpu-ort --profile bench/yolo/cpu-ort-yolo11n.json"
R=runs/yolo-refit; E="--data runs/yolo/coco256.yaml --input-size 640 --json"
/usr/bin/time -f "%e s" flock /tmp/heavy.lock edgeprune prune $M --pretrained --latency 0.6x --steps 2 $PR --measured-rounds 4 --calibration-data runs/yolo/coco256.yaml --json --out $R/y11-steps2-0.6x > $R/y11-steps2-0.6x.json
flock /tmp/heavy.lock edgeprune eval $R/y11-steps2-0.6x/model $E > $R/eval-y11-steps2-0.6x.json
flock /tmp/heavy.lock edgeprune validate $M --pretrained $R/y11-steps2-0.6x/model $PR --out $R/validate-y11-steps2-0.6x --json > $R/validate-y11-steps2-0.6x.json
for U in 0.35 0.4 0.45; do
  python -c "import sys; sys.path.insert(0, 'tools'); from pathlib import Path; from bench_yolo import uniform_plan_file; uniform_plan_file('$M', $U, 640, Path('$R/y11-uniform8-$U.plan.json'))"
  flock /tmp/heavy.lock edgeprune prune $M --pretrained --plan $R/y11-uniform8-$U.plan.json --out $R/y11-uniform8-$U --json > $R/y11-uniform8-$U.json
  flock /tmp/heavy.lock edgeprune validate $M --pretrained $R/y11-uniform8-$U/model $PR --out $R/validate-y11-uniform8-$U --json > $R/validate-y11-uniform8-$U.json
done
U=$(python - <<'PY'
import json
s = lambda p: json.load(open(p))["derived"]["measured_speedup"]
ours = s("runs/yolo-refit/validate-y11-steps2-0.6x.json")
print(min(("0.35", "0.4", "0.45"), key=lambda u: abs(s(f"runs/yolo-refit/validate-y11-uniform8-{u}.json") / ours - 1)))
PY
)
echo chosen $U
flock /tmp/heavy.lock edgeprune validate $R/y11-uniform8-$U/model $R/y11-steps2-0.6x/model $PR --out $R/validate-y11-s2-0.6x-vs-uniform8-$U --json > $R/validate-y11-s2-0.6x-vs-uniform8-$U.json
flock /tmp/heavy.lock edgeprune eval $R/y11-uniform8-$U/model $E > $R/eval-y11-uniform8-$U.json
for X in y11-steps2-0.6x y11-uniform8-$U; do
  /usr/bin/time -f "%e s" flock /tmp/heavy.lock edgeprune train $R/$X/model --data runs/yolo/coco256.yaml --reg none --epochs 10 --input-size 320 --batch-size 16 --distill $M --out $R/kd10-$X
  flock /tmp/heavy.lock edgeprune eval $R/kd10-$X/model $E > $R/eval-kd10-$X.json
done
echo done $(date -u)
