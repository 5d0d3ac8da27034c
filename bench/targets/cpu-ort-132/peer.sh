#!/usr/bin/env bash
# edgeprune's plans against Torch-Pruning's at half the MACs, each model in one interleaved run on cpu-ort,
# planned with the re-measured profile (run.sh). Needs the `bench` extra.
set -euo pipefail
cd "$(dirname "$0")/../../.."
D=bench/targets/cpu-ort-132
P=$D/cpu-ort--amd-epyc-2c.json
run() { date -u +"$1 %H:%M:%S"; python tools/bench_planner.py --profile $P --macs 0.5x --peer --ceiling "${@:2}"; }
run r56-channels --model cifar_resnet56 --pretrained --out $D/peer-r56-channels.json
run r56-branches --model cifar_resnet56 --pretrained --remove-branches --out $D/peer-r56-branches.json
run mobilenet_v2 --model mobilenet_v2 --out $D/peer-mobilenet_v2.json
# the shipped profile's latency-driven plan and the re-measured one's, in the same run
for m in cifar_resnet56 mobilenet_v2; do
  date -u +"both-$m %H:%M:%S"
  python tools/bench_planner.py --macs 0.5x --peer --ceiling --model $m $([ $m = cifar_resnet56 ] && echo --pretrained) \
    --also-profile $P --out $D/both-$m.json
done
date -u +"done %H:%M:%S"
