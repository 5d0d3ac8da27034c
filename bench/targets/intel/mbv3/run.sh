#!/usr/bin/env bash
# Models no target benchmark had covered, on a target other than cpu-ort: MobileNet-V3-Large (squeeze-excitation
# gates, hard-swish; random init) on cpu-openvino, profiled on this VM, then its default plan at half the MACs beside
# Torch-Pruning's two plans and the speed ceiling in one interleaved run. Steps whose output exists are skipped.
#   bash bench/targets/intel/mbv3/run.sh                                   (2026-12-05)
#   MODEL=timm:efficientnet_b0 TAG=effb0 bash bench/targets/intel/mbv3/run.sh   (another model, same recipe)
set -eu
cd "$(dirname "$0")/../../../.."
D=bench/targets/intel/mbv3
MODEL=${MODEL:-mobilenet_v3_large}
TAG=${TAG:-mbv3}
P=$D/cpu-openvino--intel-xeon-2c-$TAG.json
[ -f $P ] || edgeprune profile measure cpu-openvino --model $MODEL --out $P
[ -f $D/planner-cpu-openvino-$TAG.json ] || python tools/bench_planner.py --target cpu-openvino --macs 0.5x \
  --model $MODEL --peer --ceiling --profile $P --out $D/planner-cpu-openvino-$TAG.json
