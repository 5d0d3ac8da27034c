# MobileNet-V2 added to the shipped cpu-xnnpack profile (a copy), then the predictor check on both models,
# the staircase plot and the planner benchmark against Torch-Pruning at half the MACs.
cd /work/main && source .venv/bin/activate
while kill -0 $(cat runs/yolo-refit/y11c.pid) 2>/dev/null; do sleep 10; done
X=runs/prof/x32-mbv2.json; L=runs/prof/x32.log
date -u > $L
flock /tmp/heavy.lock bash -c "/usr/bin/time -f '%e s' edgeprune profile measure cpu-xnnpack --model mobilenet_v2 --budget-s 3900 --out $X >> $L 2>&1"
echo measure rc=$? $(date -u) >> $L
flock /tmp/heavy.lock bash -c "edgeprune profile check cpu-xnnpack --model mobilenet_v2 --model cifar_resnet56 --passes 2 --profile $X --json > runs/prof/check-x32.json 2> runs/prof/check-x32.err"
echo check rc=$? $(date -u) >> $L
flock /tmp/heavy.lock bash -c "edgeprune profile plot cpu-xnnpack --model cifar_resnet56 --model mobilenet_v2 --profile $X --out runs/prof/staircase-cpu-xnnpack.png >> $L 2>&1"
echo plot rc=$? $(date -u) >> $L
flock /tmp/heavy.lock bash -c "python tools/bench_planner.py --target cpu-xnnpack --macs 0.5x --model mobilenet_v2 --peer --profile $X --out runs/prof/planner-x32-mbv2 > runs/prof/planner-x32.log 2>&1"
echo planner rc=$? $(date -u) >> $L
