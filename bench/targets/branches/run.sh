#!/usr/bin/env bash
# ResNet-56 with branch removal on every target: fit the removal terms on a copy of the shipped profile, then
# time latency-driven / FLOPs-driven / Torch-Pruning plans at half the MACs in one interleaved run per target.
# usage: bench/targets/branches/run.sh TARGET...
set -u
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
D=bench/targets/branches
for T in "$@"; do
  P=$D/$T.json
  cp edgeprune/resources/profiles/$T--amd-epyc-2c.json $P
  echo "== $T fit removal $(date -u +%H:%M:%S)"
  edgeprune profile fit "$T" removal --model cifar_resnet56 --profile $P --out $P > $D/fit-$T.txt 2>&1 || { echo "fit failed: $T"; tail -3 $D/fit-$T.txt; continue; }
  echo "== $T planner $(date -u +%H:%M:%S)"
  python tools/bench_planner.py --target "$T" --macs 0.5x --model cifar_resnet56 --pretrained --peer --ceiling \
    --remove-branches --profile $P --out $D/planner-$T.json > $D/planner-$T.log 2>&1 || { echo "planner failed: $T"; tail -3 $D/planner-$T.log; }
  echo "== $T done $(date -u +%H:%M:%S)"
done
