#!/usr/bin/env bash
# Models no other benchmark covers, planned as a user would: profile them on this machine's cpu-ort, then
# edgeprune's plan shapes, the speed ceiling and Torch-Pruning's two plans at half the MACs, one interleaved
# run per model, and the predictor's error on random plans (two passes). Random weights (seeded), registry
# input sizes. Two sets, each with its own profile file (steps whose output exists are skipped):
#   bash bench/planner-peer/unbenchmarked/run.sh            # set 1 (2026-12-04 20:55-21:28 UTC)
#   SET=2 bash bench/planner-peer/unbenchmarked/run.sh      # set 2
#   SET=3 bash bench/planner-peer/unbenchmarked/run.sh      # set 3: re-parameterized models, in their deploy form
#   SET=4 bash bench/planner-peer/unbenchmarked/run.sh      # set 4: the same, two more
#   SET=5 bash bench/planner-peer/unbenchmarked/run.sh      # set 5: an SE-free MBConv net and GhostNet (2026-12-05)
#   SET=6 bash bench/planner-peer/unbenchmarked/run.sh      # set 6: channel shuffles and fire modules (2026-12-05)
#   SET=7 bash bench/planner-peer/unbenchmarked/run.sh      # set 7: two timm edge models (2026-12-05)
#   SET=8 bash bench/planner-peer/unbenchmarked/run.sh      # set 8: MobileNet-V1 and ConvNeXt-atto (2026-12-05)
#   SET=9 bash bench/planner-peer/unbenchmarked/run.sh      # set 9: MobileViT and EfficientViT, traced whole (2026-12-07)
#   SET=10 bash bench/planner-peer/unbenchmarked/run.sh     # set 10: SKNet, its selective-kernel paths prunable (2026-12-07)
set -euo pipefail
here=bench/planner-peer/unbenchmarked
case "${SET:-1}" in
  1) models=(mobilenet_v3_large timm:efficientnet_b0 resnet18); tag="" ;;
  2) models=(timm:regnety_004 timm:mobilenetv4_conv_small); tag="-2" ;;
  3) models=(timm:repvgg_a0 timm:mobileone_s0); tag="-3" ;;
  4) models=(timm:repvit_m0_9 timm:fastvit_t8); tag="-4" ;;
  5) models=(mnasnet1_0 timm:ghostnet_100); tag="-5" ;;
  6) models=(shufflenet_v2_x1_0 squeezenet1_1); tag="-6" ;;
  7) models=(timm:efficientnet_lite0 timm:lcnet_100); tag="-7" ;;
  8) models=(timm:mobilenetv1_100 timm:convnext_atto); tag="-8" ;;
  9) models=(timm:mobilevit_xxs timm:efficientvit_b0); tag="-9" ;;
  10) models=(timm:skresnet18); tag="-10" ;;
esac
args=(); for m in "${models[@]}"; do args+=(--model "$m"); done
profile=$here/profile-cpu-ort$tag.json
[ -f "$profile" ] || edgeprune profile measure cpu-ort "${args[@]}" --out "$profile"
[ -f "$here/planner$tag.json" ] || python tools/bench_planner.py --target cpu-ort --macs 0.5x --peer --ceiling \
  --rounds "${ROUNDS:-3}" --profile "$profile" "${args[@]}" --out "$here/planner$tag.json"
if [ ! -f "$here/check-2pass$tag.json" ]; then
  edgeprune profile check cpu-ort "${args[@]}" --passes 2 --profile "$profile" --json > "$here/check$tag.tmp"
  mv "$here/check$tag.tmp" "$here/check-2pass$tag.json"
fi
