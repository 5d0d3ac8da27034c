set -x
flock /tmp/heavy.lock edgeprune prune cifar_resnet56 --pretrained --target cpu-ort --macs 0.5x --rank-by macs --calibration-data cifar10 --out runs/refit-r56/prune-0.5x --json > runs/refit-r56/prune-0.5x.json
flock /tmp/heavy.lock python tools/bench_refit.py cifar_resnet56 --pretrained --plan runs/refit-r56/prune-0.5x/plan.json --calibration-data cifar10 --out runs/refit-r56/ab-0.5x
for v in zeroed means refit; do
  flock /tmp/heavy.lock edgeprune eval runs/refit-r56/ab-0.5x/$v --data cifar10-lossless --json > runs/refit-r56/eval-0.5x-$v.json
done
flock /tmp/heavy.lock edgeprune eval cifar_resnet56 --pretrained --data cifar10-lossless --json > runs/refit-r56/eval-dense.json
