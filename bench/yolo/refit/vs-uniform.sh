# A latency budget in two refitted steps against uniform magnitude plans (round to 8) near its measured speed:
# prune, eval, validate; the uniform ratios pruned and validated; the closest one timed against ours in one run;
# both fine-tuned the same way (10 epochs at 320, distilled from the dense model) and evaluated at 640.
#   bash bench/yolo/refit/vs-uniform.sh yolo11n 0.6x 0.35 0.4 0.45   (2026-12-03, 06:15 UTC)
#   bash bench/yolo/refit/vs-uniform.sh yolo11n 0.8x 0.15 0.2 0.25    (2026-12-03, 01:36 UTC, its prune run first)
# Both runs' files, in this folder, say y11 where this script writes the model's name.
cd /work/main && source .venv/bin/activate
set -ex
NAME=$1; BUDGET=$2; shift 2; RATIOS="$*"
M=ultralytics:$NAME.yaml; PR="--target cpu-ort --profile bench/yolo/cpu-ort-$NAME.json"
R=runs/yolo-refit; E="--data runs/yolo/coco256.yaml --input-size 640 --json"; T=$NAME-steps2-$BUDGET
/usr/bin/time -f "%e s" flock /tmp/heavy.lock edgeprune prune $M --pretrained --latency $BUDGET --steps 2 $PR --measured-rounds 4 --calibration-data runs/yolo/coco256.yaml --json --out $R/$T > $R/$T.json
flock /tmp/heavy.lock edgeprune eval $R/$T/model $E > $R/eval-$T.json
flock /tmp/heavy.lock edgeprune validate $M --pretrained $R/$T/model $PR --out $R/validate-$T --json > $R/validate-$T.json
for U in $RATIOS; do
  python -c "import sys; sys.path.insert(0, 'tools'); from pathlib import Path; from bench_yolo import uniform_plan_file; uniform_plan_file('$M', $U, 640, Path('$R/$NAME-uniform8-$U.plan.json'))"
  flock /tmp/heavy.lock edgeprune prune $M --pretrained --plan $R/$NAME-uniform8-$U.plan.json --out $R/$NAME-uniform8-$U --json > $R/$NAME-uniform8-$U.json
  flock /tmp/heavy.lock edgeprune validate $M --pretrained $R/$NAME-uniform8-$U/model $PR --out $R/validate-$NAME-uniform8-$U --json > $R/validate-$NAME-uniform8-$U.json
done
U=$(python - "$R" "$NAME" "$T" $RATIOS <<'PY'
import json, sys
r, name, ours, *ratios = sys.argv[1:]
s = lambda p: json.load(open(f"{r}/{p}.json"))["derived"]["measured_speedup"]
print(min(ratios, key=lambda u: abs(s(f"validate-{name}-uniform8-{u}") / s(f"validate-{ours}") - 1)))
PY
)
echo chosen $U
flock /tmp/heavy.lock edgeprune validate $R/$NAME-uniform8-$U/model $R/$T/model $PR --out $R/validate-$T-vs-uniform8-$U --json > $R/validate-$T-vs-uniform8-$U.json
flock /tmp/heavy.lock edgeprune eval $R/$NAME-uniform8-$U/model $E > $R/eval-$NAME-uniform8-$U.json
for X in $T $NAME-uniform8-$U; do
  /usr/bin/time -f "%e s" flock /tmp/heavy.lock edgeprune train $R/$X/model --data runs/yolo/coco256.yaml --reg none --epochs 10 --input-size 320 --batch-size 16 --distill $M --out $R/kd10-$X
  flock /tmp/heavy.lock edgeprune eval $R/kd10-$X/model $E > $R/eval-kd10-$X.json
done
echo done $(date -u)
