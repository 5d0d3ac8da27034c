#!/usr/bin/env bash
# The settled cpu-openvino profile (bench/targets/spikes/) with ResNet-56's in-network width fit (2026-12-07):
# does the fit price the stage-1 cut to 4 channels as the network runs it?
#   bash bench/targets/narrow/fit.sh   -> bench/targets/narrow/cpu-openvino--amd-epyc-2c.json, fit.log
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
D=bench/targets/narrow
start=$(date -u +%H:%M:%S)
flock /tmp/heavy.lock edgeprune profile fit cpu-openvino widths --model cifar_resnet56 \
  --profile bench/targets/spikes/cpu-openvino--amd-epyc-2c.json --out $D/cpu-openvino--amd-epyc-2c.json 2>&1 \
  | grep -v -E "Warning|cpuinfo|Statistics collection|Applying|it/s" > $D/fit.log
echo "ran $start-$(date -u +%H:%M:%S) UTC" >> $D/fit.log
