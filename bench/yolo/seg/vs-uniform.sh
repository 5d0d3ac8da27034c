#!/usr/bin/env bash
# After run.sh: uniform magnitude plans (round to 8) of the same dense YOLOv8n-seg near the latency plan's
# measured speed, each pruned and validated; the closest one timed against ours in one run, then fine-tuned as
# ours was (10 epochs at 320, distilled from dense) and scored at 640 (box and mask mAP).
#   bash bench/yolo/seg/vs-uniform.sh 0.7x 0.28 0.31 0.34
set -ex
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
B=$1; shift; RATIOS="$*"
M=ultralytics:yolov8n-seg.yaml; R=runs/yolo-seg; D=bench/yolo/seg; DATA=runs/yolo/coco256-seg.yaml
PR="--target cpu-ort --profile $D/cpu-ort-yolov8n-seg.json"; E="--data $DATA --input-size 640 --json"
for U in $RATIOS; do
  [ -f $R/uniform8-$U.plan.json ] || python - "$R/dense/model" "$U" "$R/uniform8-$U.plan.json" <<'PY'
import sys
from pathlib import Path

import torch

sys.path.insert(0, "tools")
from bench_yolo import uniform_keep  # noqa: E402

from edgeprune.graph import build_graph  # noqa: E402
from edgeprune.prune import Plan, load_model_ref  # noqa: E402

model, name, kwargs, _ = load_model_ref(sys.argv[1])
graph = build_graph(model.eval(), torch.randn(1, 3, 640, 640), model_name=name, model_kwargs=kwargs)
Plan(graph.model_name, graph.fingerprint, uniform_keep(model, graph, float(sys.argv[2]))).save(Path(sys.argv[3]))
PY
  edgeprune prune $R/dense/model --input-size 640 --plan $R/uniform8-$U.plan.json --out $R/uniform8-$U --json > $D/prune-uniform8-$U.json
  edgeprune validate $M --pretrained $R/uniform8-$U/model $PR --out $R/validate-uniform8-$U --json > $D/validate-uniform8-$U.json
done
U=$(python - "$D" "$B" $RATIOS <<'PY'
import json, sys
d, b, *ratios = sys.argv[1:]
s = lambda p: json.load(open(f"{d}/{p}.json"))["derived"]["measured_speedup"]
print(min(ratios, key=lambda u: abs(s(f"validate-uniform8-{u}") / s(f"validate-{b}") - 1)))
PY
)
echo chosen $U
edgeprune validate $R/uniform8-$U/model $R/ch-$B/model $PR --out $R/validate-$B-vs-uniform8-$U --json > $D/validate-$B-vs-uniform8-$U.json
edgeprune eval $R/uniform8-$U/model $E > $D/eval-uniform8-$U.json
edgeprune train $R/uniform8-$U/model --data $DATA --reg none --epochs 10 --input-size 320 --batch-size 16 \
  --distill $R/dense/model --out $R/kd10-uniform8-$U
edgeprune eval $R/kd10-uniform8-$U/model $E > $D/eval-kd10-uniform8-$U.json
echo done $(date -u)
