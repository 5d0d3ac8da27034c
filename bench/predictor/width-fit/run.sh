#!/usr/bin/env bash
# Does an in-network width fit (`profile fit TARGET widths`) bring the predictor's error on the planner's own
# plan (and on random plans) down, on models calibrated with the planner's plans? For each model: copy its
# profile from the unbenchmarked sets, fit the widths on the copy, then `profile check --planned-macs 0.5x`
# with the profile before and after (5 random plans, two passes each). Steps whose output exists are skipped.
#   bash bench/predictor/width-fit/run.sh       (2026-12-05, this VM's cpu-ort)
set -euo pipefail
here=bench/predictor/width-fit
src=bench/planner-peer/unbenchmarked
# (MobileNetV4-small and SqueezeNet-1.1 were listed too; the run was stopped after these two had answered)
pairs=("timm:mobilenetv1_100 $src/profile-cpu-ort-8.json" "timm:regnety_004 $src/profile-cpu-ort-2.json")
for pair in "${pairs[@]}"; do
  read -r model profile <<< "$pair"
  tag=${model#timm:}
  fitted=$here/profile-$tag-widths.json
  if [ ! -f "$fitted" ]; then
    cp "$profile" "$here/$tag.tmp.json"
    edgeprune profile fit cpu-ort widths --model "$model" --profile "$here/$tag.tmp.json" > "$here/fit-$tag.txt"
    mv "$here/$tag.tmp.json" "$fitted"
  fi
  for which in before after; do
    out=$here/check-$tag-$which.json
    [ -f "$out" ] && continue
    p=$profile; [ "$which" = after ] && p=$fitted
    edgeprune profile check cpu-ort --model "$model" --planned-macs 0.5x --passes 2 --profile "$p" --json > "$out.tmp"
    mv "$out.tmp" "$out"
  done
done
