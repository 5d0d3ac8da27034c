#!/usr/bin/env bash
# ResNet-56 (pretrained), channels only, at half the MACs: every edgeprune plan shape timed beside
# Torch-Pruning's uniform and global plans in one interleaved run per target. The committed results were run at
# 37c01f0, which also had a "global, on the blocking" shape (taken out in 04b61ad).
#   bash bench/targets/global/run.sh TARGET...
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
for T in "$@"; do
  echo "== $T $(date -u +%H:%M:%S)"
  python tools/bench_planner.py --target $T --macs 0.5x --model cifar_resnet56 --pretrained --peer \
    --out bench/targets/global/planner-$T
done
echo "== done $(date -u +%H:%M:%S)"
