#!/usr/bin/env bash
# Latency-driven vs FLOPs-driven plans at 2x fewer MACs on every CPU target, pretrained ResNet-56 and
# MobileNet-V2 (random init: no pretrained weights offline), one interleaved run per target and model, with
# the planner of 2026-12-04 evening (plan shapes priced by the profile, time-charged fallback steps).
#   bash bench/targets/latency-vs-flops-2026-12-04/run.sh
set -u
cd "$(dirname "$0")/../../.."
D=bench/targets/latency-vs-flops-2026-12-04
for t in cpu-ort cpu-ort-int8 cpu-xnnpack cpu-openvino cpu-xnnpack-int8 cpu-openvino-int8; do
  echo "== $(date -u +%T) $t"
  python tools/bench_planner.py --target $t --macs 0.5x --model cifar_resnet56 --pretrained \
    --out $D/planner-$t-cifar_resnet56.json > $D/log-$t-cifar_resnet56.txt 2>&1 || echo "failed: $t r56"
  python tools/bench_planner.py --target $t --macs 0.5x --model mobilenet_v2 \
    --out $D/planner-$t-mobilenet_v2.json > $D/log-$t-mobilenet_v2.txt 2>&1 || echo "failed: $t mbv2"
done
echo "== done $(date -u +%T)"
