cd /work/main && source .venv/bin/activate
while kill -0 $(head -1 runs/prof/chain.pid) 2>/dev/null; do sleep 10; done
P=runs/prof/cpu-openvino-int8.json
flock /tmp/heavy.lock bash -c "edgeprune profile check cpu-openvino-int8 --model cifar_resnet56 --passes 2 --profile $P --json > runs/prof/check-ov8-r56.json 2> runs/prof/check-ov8-r56.err"
echo check-ov8-r56 rc=$? $(date -u) >> runs/prof/chain.log
X=runs/prof/cpu-xnnpack-int8.json
if [ -f $X ]; then
  flock /tmp/heavy.lock bash -c "edgeprune profile check cpu-xnnpack-int8 --model cifar_resnet56 --passes 2 --profile $X --json > runs/prof/check-x8-r56.json 2> runs/prof/check-x8-r56.err"
  echo check-x8 rc=$? $(date -u) >> runs/prof/chain.log
  flock /tmp/heavy.lock bash -c "edgeprune profile plot cpu-xnnpack-int8 --model cifar_resnet56 --profile $X --out runs/prof/staircase-cpu-xnnpack-int8.png > runs/prof/plot-x8.log 2>&1"
  echo plot-x8 rc=$? $(date -u) >> runs/prof/chain.log
  flock /tmp/heavy.lock bash -c "python tools/bench_planner.py --target cpu-xnnpack-int8 --macs 0.5x --model cifar_resnet56 --peer --profile $X --out runs/prof/planner-x8-r56 > runs/prof/planner-x8.log 2>&1"
  echo planner-x8 rc=$? $(date -u) >> runs/prof/chain.log
fi
