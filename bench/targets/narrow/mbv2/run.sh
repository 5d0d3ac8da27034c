#!/usr/bin/env bash
# MobileNet-V2's in-network width fit on top of bench/targets/narrow/again's profile (settled, ResNet-56's widths
# fitted), then its plan at half the MACs beside the shipped profile's and Torch-Pruning's (2026-12-07):
#   bash bench/targets/narrow/mbv2/run.sh   -> bench/targets/narrow/mbv2/
set -eu
cd "$(dirname "$0")/../../../.."
source .venv/bin/activate
D=bench/targets/narrow/mbv2
P=$D/cpu-openvino--amd-epyc-2c.json
echo "widths $(date -u +%H:%M:%S)"
edgeprune profile fit cpu-openvino widths --model mobilenet_v2 --profile bench/targets/narrow/again/cpu-openvino--amd-epyc-2c.json \
  --out $P 2>&1 | grep -v -E "Warning|warnings.warn|cpuinfo|Statistics collection|Applying|it/s" > $D/fit.log
echo "plans $(date -u +%H:%M:%S)"
[ "${PLANS:-1}" = 1 ] && D=$D bash bench/targets/rank/run.sh cpu-openvino mobilenet_v2 $P \
  edgeprune/resources/profiles/cpu-openvino--amd-epyc-2c.json openvino-mobilenet_v2
echo "done $(date -u +%H:%M:%S)"
