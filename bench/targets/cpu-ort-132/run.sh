#!/usr/bin/env bash
# Re-measure the shipped cpu-ort profile on this machine's onnxruntime with the two-pass shuffled sweep:
# tables for ResNet-56, MobileNet-V2 and ResNet-50, then their in-network width and removal fits, the
# predictor check and the staircases. Writes into this folder; copying the profile into
# edgeprune/resources/profiles/ is a separate, reviewed step.
set -euo pipefail
cd "$(dirname "$0")/../../.."
D=bench/targets/cpu-ort-132
P=$D/cpu-ort--amd-epyc-2c.json
MODELS="--model cifar_resnet56 --model mobilenet_v2 --model resnet50"
date -u +"start %H:%M:%S"
edgeprune profile measure cpu-ort $MODELS --out $P
date -u +"tables %H:%M:%S"
edgeprune profile fit cpu-ort widths $MODELS --profile $P --out $P
date -u +"widths %H:%M:%S"
edgeprune profile fit cpu-ort removal --model cifar_resnet56 --model mobilenet_v2 --profile $P --out $P
date -u +"removal %H:%M:%S"
edgeprune profile check cpu-ort $MODELS --profile $P --passes 2 --json > $D/check.json
date -u +"check %H:%M:%S"
edgeprune profile plot cpu-ort $MODELS --profile edgeprune/resources/profiles/cpu-ort--amd-epyc-2c.json --out $D/staircase-before.png
edgeprune profile plot cpu-ort $MODELS --profile $P --out $D/staircase-after.png
date -u +"done %H:%M:%S"
