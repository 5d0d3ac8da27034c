#!/usr/bin/env bash
# cpu-openvino's settled profile (bench/targets/spikes/) settled again until no width stands out, then ResNet-56's
# in-network width fit; its plans timed beside the shipped profile's and Torch-Pruning's, a latency budget priced
# by each profile alone, and a fresh predictor check (2026-12-07):
#   bash bench/targets/narrow/run.sh   -> bench/targets/narrow/again/ (profile, logs, tables, reports)
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
D=bench/targets/narrow/again
P=$D/cpu-openvino--amd-epyc-2c.json
SHIPPED=edgeprune/resources/profiles/cpu-openvino--amd-epyc-2c.json
mkdir -p $D
quiet() { grep -v -E "Warning|warnings.warn|cpuinfo|Statistics collection|Applying|it/s"; }
echo "settle $(date -u +%H:%M:%S)"
edgeprune profile fit cpu-openvino spikes --model cifar_resnet56 --model mobilenet_v2 \
  --profile bench/targets/spikes/cpu-openvino--amd-epyc-2c.json --out $P 2>&1 | quiet > $D/settle.log
echo "widths $(date -u +%H:%M:%S)"
edgeprune profile fit cpu-openvino widths --model cifar_resnet56 --profile $P --out $P 2>&1 | quiet > $D/fit.log
echo "plans $(date -u +%H:%M:%S)"
D=$D bash bench/targets/rank/run.sh cpu-openvino cifar_resnet56 $P $SHIPPED openvino-cifar_resnet56 --pretrained
D=$D bash bench/targets/rank/run.sh cpu-openvino mobilenet_v2 $P $SHIPPED openvino-mobilenet_v2
echo "budget $(date -u +%H:%M:%S)"
T=cpu-openvino R=$D NEW=$P OLD=$SHIPPED bash bench/targets/rank/latency-budget.sh 2>&1 | quiet > $D/latency-budget.log
echo "check $(date -u +%H:%M:%S)"
edgeprune profile check cpu-openvino --model cifar_resnet56 --model mobilenet_v2 --plans 5 --passes 2 \
  --planned-macs 0.5x --profile $P --json 2>/dev/null > $D/check-cpu-openvino.json
echo "done $(date -u +%H:%M:%S)"
