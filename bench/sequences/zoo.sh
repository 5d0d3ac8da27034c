#!/usr/bin/env bash
# Each zoo model at half the MACs (default settings, cpu-ort), then validated beside its dense form on cpu-ort:
# exported, checked against torch, timed in alternating rounds. Usage: bash bench/sequences/zoo.sh [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-/tmp/edgeprune-sequence-zoo}
ep=${EDGEPRUNE:-edgeprune}
export PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$work"
out=$here/zoo-cpu-ort.jsonl
: > "$out"
for m in m5 quartznet tcn wavenet crnn conformer ecg_resnet1d se_resnet1d inception_time; do
  [ -d "$work/$m" ] || $ep prune "zoo:$m" --target cpu-ort --macs 0.5x --out "$work/$m" > /dev/null
  rm -rf "$work/$m-validate"
  $ep validate "zoo:$m" "$work/$m/model" --target cpu-ort --out "$work/$m-validate" > /dev/null 2>&1 || true
  python - "$m" "$work/$m-validate/report.json" >> "$out" <<'PY'
import json, sys
name, path = sys.argv[1:]
try:
    r = json.load(open(path))
except OSError as exc:
    print(json.dumps({"model": name, "error": str(exc)}))
    raise SystemExit
d = r["derived"]
print(json.dumps({"model": name, "macs_speedup": round(d["macs_speedup"], 3),
                  "measured_speedup": round(d["measured_speedup"], 3),
                  "ci": [round(v, 3) for v in d["speedup_ci"]],
                  "dense_ms": round(r["original"]["latency"]["median_ms"], 4),
                  "onnx_vs_torch": max(r["pruned"]["numerics_rel_err"].values())}))
PY
done
cat "$out"
