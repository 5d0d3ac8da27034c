#!/usr/bin/env bash
# Spikes of a shipped profile timed again beside their neighbours (2026-12-06), then its lookup and calibration
# chosen again on its stored runs; no network is timed:
#   [SRC=PROFILE] bash bench/targets/spikes/settle.sh TARGET
#   -> bench/targets/spikes/TARGET--amd-epyc-2c.json, settle-TARGET.log (SRC: default the shipped profile)
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
T=$1
SRC=${SRC:-edgeprune/resources/profiles/$T--amd-epyc-2c.json}
D=bench/targets/spikes
start=$(date -u +%H:%M:%S)
flock /tmp/heavy.lock edgeprune profile fit $T spikes --model cifar_resnet56 --model mobilenet_v2 \
  --profile $SRC --out $D/$T--amd-epyc-2c.json 2>&1 \
  | grep -v -E "Warning|cpuinfo|Statistics collection|Applying" > $D/settle-$T.log
echo "ran $start-$(date -u +%H:%M:%S) UTC" >> $D/settle-$T.log
