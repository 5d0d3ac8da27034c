#!/usr/bin/env bash
# A sequence model end to end: a 1-D CNN (nets.py) reads CIFAR-10 images as sequences of their 32 rows
# (make_data.py: 2,000 train and 500 val samples per class, one .npy each), trained dense, then compressed
# to half the MACs on cpu-ort-int8 (profile measured here first), and validated against a dense model trained
# as many epochs on the same data. Usage: [SEED=1] bash bench/sequences/run.sh [WORK_DIR]   (about 30 minutes)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-/tmp/edgeprune-sequences}
data_root=${EDGEPRUNE_DATA:-$here/../../../shared/data}
ep=${EDGEPRUNE:-edgeprune}
seed=${SEED:-0}
s=$([ "$seed" = 0 ] || echo "-seed$seed")  # seed 0 keeps the plain names
export PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$work" && cd "$work"
[ -d data ] || python "$here/make_data.py" "$data_root/cifar10-jpeg/CIFAR-10-images-d7d0561.tar.gz" data --train 2000 --val 500
[ -f prof-int8.json ] || $ep profile measure cpu-ort-int8 --model nets:tc_resnet --out prof-int8.json
[ -d "dense18$s" ] || $ep train nets:tc_resnet --data data --reg none --epochs 18 --seed "$seed" --out "dense18$s"
[ -d "dense12$s" ] || $ep train nets:tc_resnet --data data --reg none --epochs 12 --seed "$seed" --out "dense12$s"
# 12 dense epochs + 2 sparsity epochs + 4 fine-tuning epochs: as many as the baseline's 18
# (exit code 4: its own speedup gate fell short of the prediction; the model is still validated below)
$ep compress "dense12$s/model" --target cpu-ort-int8 --macs 0.5x --profile prof-int8.json --reg-epochs 2 \
  --finetune-epochs 4 --data data --out "compressed$s" --json > "compress$s.json" || [ $? = 4 ]
for t in cpu-ort-int8 cpu-ort; do
  $ep validate "dense18$s/model" "compressed$s/finetune/model" --target "$t" --data data --out "validate-$t$s" \
    --json > "validate-$t$s.json"
done
cp "$(ls -d "compressed$s"/prune/step*/ | grep -v finetune | tail -1)plan.md" "$here/plan$s.md"
for t in cpu-ort-int8 cpu-ort; do
  cp "validate-$t$s/report.md" "$here/validate-$t$s.md"; cp "validate-$t$s/report.json" "$here/validate-$t$s.json"
done
[ "$seed" = 0 ] || exit 0
# against Torch-Pruning (the bench extra) on cpu-ort, all plans at half the MACs timed in one interleaved run
[ -f prof-fp32.json ] || $ep profile measure cpu-ort --model nets:tc_resnet --out prof-fp32.json
python "$here/../../tools/bench_planner.py" --target cpu-ort --model nets:tc_resnet --macs 0.5x --peer --ceiling \
  --profile prof-fp32.json --out "$here/planner-peer.json"
