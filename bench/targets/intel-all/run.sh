#!/usr/bin/env bash
# Every CPU target profiled afresh on this VM with the code of 2026-12-05 (the Intel Xeon of that day; cpu-xnnpack on
# 2026-12-06 met an AMD EPYC, and its file is named after it; D=bench/targets/zen4 holds that CPU's OpenVINO and
# cpu-ort-int8 profiles of 2026-12-06, with calibration runs settled): ResNet-56 and
# MobileNet-V2 tables + calibration, then the predictor check (5 random plans per model, timed twice, and the
# planner's plan at half the MACs), and the staircase plot.
#   [D=FOLDER] bash bench/targets/intel-all/run.sh [TARGET ...]     (steps whose output exists are skipped)
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
D=${D:-bench/targets/intel-all}  # another folder: D=bench/targets/NAME
TARGETS=${*:-cpu-ort cpu-ort-int8 cpu-openvino cpu-openvino-int8 cpu-xnnpack cpu-xnnpack-int8}
M="--model cifar_resnet56 --model mobilenet_v2"
step() { echo "== $1 $(date -u +%H:%M:%S)"; }
SLUG=$(python -c "from edgeprune.latency.profile import device_fingerprint, device_slug; print(device_slug(device_fingerprint('')))")
for T in $TARGETS; do
  P=$(ls $D/$T--*.json 2>/dev/null | head -1)  # a profile already here, whatever CPU measured it; else this one's
  [ -n "$P" ] || P=$D/$T--$SLUG.json
  step "$T measure"
  [ -f $P ] || edgeprune profile measure $T $M --out $P
  step "$T check"
  [ -f $D/check-$T.json ] || { edgeprune profile check $T $M --passes 2 --planned-macs 0.5x --profile $P --json \
    > $D/check-$T.json.tmp && mv $D/check-$T.json.tmp $D/check-$T.json; }
  [ -f $D/staircase-$T.png ] || edgeprune profile plot $T $M --profile $P --out $D/staircase-$T.png
done
step done
