cd /work/main && source .venv/bin/activate
while kill -0 $(head -1 runs/prof/chain2.pid) 2>/dev/null; do sleep 10; done
P=runs/prof/cpu-openvino-int8.json
flock /tmp/heavy.lock bash -c "python tools/bench_planner.py --target cpu-openvino-int8 --macs 0.5x --model cifar_resnet56 --peer --profile $P --out runs/prof/planner-ov8-r56 > runs/prof/planner-ov8-r56.log 2>&1"
echo planner-ov8-r56 rc=$? $(date -u) >> runs/prof/chain.log
