#!/usr/bin/env bash
# The runs behind docs/benchmarks/targets.md, "Ranked by the tables, priced by the calibration" (after 501a40c).
set -eu
cd "$(dirname "$0")/../../.."
R=bench/targets/rank
SETTLED_X=bench/targets/macs/settled/cpu-xnnpack--amd-epyc-2c.json  # this CPU's, MobileNet-V2 with a MACs term
SHIPPED_X=$R/cpu-xnnpack--amd-epyc-2c-shipped-2026-12-05.json
# the run before the change (17:26-17:32 UTC, at 839480a: the planner still ranked with the MACs term), the same
# tables' plain line as the second profile:
#   bash $R/run.sh cpu-xnnpack mobilenet_v2 $SETTLED_X bench/targets/xnnpack-sessions/cpu-xnnpack--amd-epyc-2c-settled.json cpu-xnnpack-settled
bash $R/run.sh cpu-xnnpack mobilenet_v2 $SETTLED_X $SHIPPED_X xnnpack-mobilenet_v2
bash $R/run.sh cpu-xnnpack cifar_resnet56 $SETTLED_X $SHIPPED_X xnnpack-cifar_resnet56 --pretrained
# the shipped OpenVINO profiles with a term: cpu-openvino's MobileNet-V2 (MACs), cpu-openvino-int8's ResNet-56
# (activations); the second profile is the same tables with the plain line fitted before the term
bash $R/run.sh cpu-openvino mobilenet_v2 edgeprune/resources/profiles/cpu-openvino--amd-epyc-2c.json \
  bench/targets/zen4/cpu-openvino--amd-epyc-2c.json openvino-mobilenet_v2
bash $R/run.sh cpu-openvino-int8 cifar_resnet56 edgeprune/resources/profiles/cpu-openvino-int8--amd-epyc-2c.json - \
  openvino-int8-cifar_resnet56 --pretrained --ceiling
