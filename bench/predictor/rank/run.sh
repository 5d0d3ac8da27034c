#!/usr/bin/env bash
# Which ranks a target's cuts better: the shipped calibration's terms (the activation MB weighing most)
# or the layer tables alone? One interleaved run per (target, model): the shipped profile's latency plan
# beside the plan of the same profile with its calibration refitted as a plain line (bench/predictor/rank/T-line.json,
# made here from the shipped profile, not committed).
set -euo pipefail
cd "$(dirname "$0")/../../.."
for t in cpu-openvino cpu-xnnpack-int8 cpu-openvino-int8; do
  python tools/refit_calibration.py "edgeprune/resources/profiles/$t--amd-epyc-2c.json" --line \
    --out "bench/predictor/rank/$t-line.json"
done
for tm in cpu-openvino:cifar_resnet56 cpu-xnnpack-int8:cifar_resnet56 cpu-xnnpack-int8:mobilenet_v2 cpu-openvino-int8:cifar_resnet56; do
  t=${tm%%:*}; m=${tm##*:}
  date -u +"%H:%M:%S $t $m"
  python tools/bench_planner.py --target "$t" --macs 0.5x --rounds 3 --model "$m" \
    --also-profile "bench/predictor/rank/$t-line.json" --out "bench/predictor/rank/$t-$m.json" | tail -12
done
date -u +"%H:%M:%S done"
