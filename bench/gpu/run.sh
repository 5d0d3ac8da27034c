#!/usr/bin/env bash
# The GPU run of issues 21 and 22 (one lent H200, minutes of device time): fine-tune the pruned YOLOv8n on the
# GPU; time it against the dense model with torch CUDA fp16 (CUDA graphs and eager, batch 1 and 32); measure
# cuda-torch-fp16 profiles of ResNet-56, MobileNet-V2 and ResNet-50; check the predictor on them and compare
# latency-driven with FLOPs-driven plans at half the MACs. Every step has a time cap; a failed step is logged
# and the next one runs. Results of the two leases of 2026-12-04: docs/benchmarks/gpu.md.
#   bash bench/gpu/run.sh OUT_DIR     (from the repository root; .gpu/ holds what the machine lacks:
#                                      site/ packages, data/ = EDGEPRUNE_DATA, p-0.7x/ the pruned model;
#                                      bash bench/gpu/bundle.sh builds it)
# PARTS picks steps ("ft e2e profiles branches"). On the H200 the fine-tune step took 162 s (150 s of training), the
# timings 75 s; ResNet-56's 6 layer tables took about 1 s each, MobileNet-V2's 16 tables 94 s and ResNet-50's
# 110 s, each model's calibration 10-20 s; the planner comparison over three models needs more than 150 s.
# PROFILE_S caps each model; a capped one resumes from its .partial.json when rerun on the same machine.
# PROFILES="cuda-torch-fp16:cifar_resnet56,resnet50 bench/gpu/targets/cuda-torch-fp16-b32.toml:cifar_resnet56"
# picks targets and models; SEEDS (below) resumes from tables measured on an earlier lease.
# Dry run on a CPU: T1=cpu.toml TE=cpu.toml T32=cpu32.toml FT_MIN=0.5 LIMIT=600 bash bench/gpu/run.sh /tmp/x
set -u
OUT=${1:?OUT_DIR}
R=$OUT/r
mkdir -p "$R"
export PYTHONPATH=$PWD:$PWD/.gpu/site PYTHONUNBUFFERED=1 EDGEPRUNE_DATA=$PWD/.gpu/data EDGEPRUNE_HOME=/tmp/ep-home
T1=${T1:-cuda-torch-fp16}
TE=${TE:-bench/gpu/targets/cuda-torch-fp16-eager.toml}
T32=${T32:-bench/gpu/targets/cuda-torch-fp16-b32.toml}
FT_MIN=${FT_MIN:-2.5}
LIMIT=${LIMIT:-540}
PARTS=${PARTS:-"ft e2e profiles branches"}  # a subset reruns part of it
has() { [[ " $PARTS " == *" $1 "* ]]; }
START=$(date +%s)
PY=python3
EP="$PY -m edgeprune.cli"
MODELS=${MODELS:-"cifar_resnet56 mobilenet_v2 resnet50"}
PROFILE_S=${PROFILE_S:-170}

left() { echo $((LIMIT - ($(date +%s) - START))); }
step() {  # step CAP_S COMMAND...: run it for at most CAP_S seconds (less if the run's time is nearly out)
  local cap=$1 l
  shift
  l=$(left)
  if [ "$l" -lt 20 ]; then echo "== skipped (time): $*" >&2; return; fi
  [ "$cap" -gt "$l" ] && cap=$l
  echo "== $(date -u +%T) ($l s left, cap $cap s): $*" >&2
  timeout "$cap" "$@"
  echo "== rc $?" >&2
}
slug() { $PY -c "from edgeprune.latency.profile import device_fingerprint as f, device_slug as s; print(s(f('torch')))"; }

{ nvidia-smi; $PY -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())"; } \
  > "$R/machine.txt" 2>&1
Y=$R/coco256.yaml
has ft && sed "s#^path: .*#path: $EDGEPRUNE_DATA/coco256#" "$EDGEPRUNE_DATA/coco256/coco256.yaml" > "$Y"
DEV=$(slug)
echo "device: $DEV"

# issue 21: the pruned YOLOv8n (0.7x cpu-ort latency plan) fine-tuned with distillation, as on the CPU, longer
has ft && step $((${FT_MIN%.*} * 60 + 80)) $PY bench/gpu/finetune_yolo.py .gpu/p-0.7x/model "$Y" "$R/ft" "$FT_MIN"
has e2e && step 90 $PY tools/bench_latency.py "$R/yolo-latency.json" --target "$T1" --target "$TE" --batch 1 --batch 32 \
  --input-size 640 --model ultralytics:yolov8n.yaml --model .gpu/p-0.7x/model
# the dense classifiers, CUDA graphs against eager (the first target is each run's reference)
has e2e && step 40 $PY tools/bench_latency.py "$R/cnn32-latency.json" --target "$T1" --target "$TE" --batch 1 --batch 32 \
  --input-size 32 --model cifar_resnet56
has e2e && step 60 $PY tools/bench_latency.py "$R/cnn224-latency.json" --target "$T1" --target "$TE" --batch 1 --batch 32 \
  --input-size 224 --model mobilenet_v2 --model resnet50

# issue 22: profiles, the predictor's check, latency-driven vs FLOPs-driven plans. PROFILES lists TARGET:MODELS;
# SEEDS lists TARGET:PARTIAL_JSON... of tables measured on an earlier lease of the same kind of machine (the
# largest grid of each geometry is kept), so a run resumes instead of measuring them again.
PROFILES=${PROFILES:-"$T1:${MODELS// /,}"}
SEEDS=${SEEDS:-}
seed() {  # seed TARGET_NAME PARTIAL_OUT: merge the target's seed files into PARTIAL_OUT unless it exists
  local files
  files=$(for s in $SEEDS; do [ "${s%%:*}" = "$1" ] && echo "${s#*:}" | tr , ' '; done)
  [ -n "$files" ] && [ ! -f "$2" ] || return 0
  $PY - "$2" $files <<'PYEOF'
import json, sys
out, merged = sys.argv[1], None
for f in sys.argv[2:]:
    d = json.load(open(f))
    merged = merged or {**d, "tables": {}}
    for k, t in d["tables"].items():
        size = lambda x: len(x["cin"]) * len(x["cout"] or [1])
        if k not in merged["tables"] or size(t) > size(merged["tables"][k]):
            merged["tables"][k] = t
json.dump(merged, open(out, "w"))
print(f"seeded {out}: {len(merged['tables'])} tables", file=sys.stderr)
PYEOF
}
has profiles && for spec in $PROFILES; do
  T=${spec%%:*}
  models=${spec#*:}
  models=${models//,/ }
  name=$(basename "$T" .toml)
  P=$R/$name--$DEV.json
  seed "$name" "${P%.json}.partial.json"
  for m in $models; do
    step $((PROFILE_S + 20)) $EP profile measure "$T" --model $m --out "$P" --budget-s "$PROFILE_S"
  done
  step 60 $EP profile check "$T" $(printf -- "--model %s " $models) --profile "$P" --plans 5 --json \
    > "$R/check-$name.json"
  step 150 $PY tools/bench_planner.py --target "$T" --macs 0.5x $(printf -- "--model %s " $models) --profile "$P" \
    --peer --ceiling --out "$R/planner-$name.json"
done

# whole residual branches: at batch 1 on a GPU a layer costs its launch whatever its width (the tables), so
# removing layers may be the one cut that pays
P1=$R/$(basename "$T1" .toml)--$DEV.json
has branches && [ -f "$P1" ] && for m in cifar_resnet56 resnet50; do  # needs T1's profile from the step above
  step 90 $PY tools/bench_planner.py --target "$T1" --macs 0.5x --model $m --profile "$P1" --remove-branches \
    --out "$R/planner-branches-$m.json"
done

echo "== done $(date -u +%T), $(( $(date +%s) - START )) s"
