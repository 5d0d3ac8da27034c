# after the OV-int8 MobileNet-V2 profile: its check, plot and plans; then the cpu-xnnpack-int8 ResNet-56 profile
cd /work/main && source .venv/bin/activate
while kill -0 $(cat runs/prof/ov8.pid) 2>/dev/null; do sleep 10; done
P=runs/prof/cpu-openvino-int8.json
if grep -q rc=0 runs/prof/ov8.log; then
  flock /tmp/heavy.lock bash -c "edgeprune profile check cpu-openvino-int8 --model mobilenet_v2 --passes 2 --profile $P --json > runs/prof/check-ov8-mbv2.json 2> runs/prof/check-ov8-mbv2.err"
  echo check rc=$? $(date -u) >> runs/prof/chain.log
  flock /tmp/heavy.lock bash -c "edgeprune profile plot cpu-openvino-int8 --model cifar_resnet56 --model mobilenet_v2 --profile $P --out runs/prof/staircase-cpu-openvino-int8.png > runs/prof/plot.log 2>&1"
  echo plot rc=$? $(date -u) >> runs/prof/chain.log
  flock /tmp/heavy.lock bash -c "python tools/bench_planner.py --target cpu-openvino-int8 --macs 0.5x --model mobilenet_v2 --peer --profile $P --out runs/prof/planner-ov8-mbv2 > runs/prof/planner-ov8.log 2>&1"
  echo planner rc=$? $(date -u) >> runs/prof/chain.log
fi
date -u > runs/prof/x8.start
flock /tmp/heavy.lock bash -c 'edgeprune profile measure cpu-xnnpack-int8 --model cifar_resnet56 --out runs/prof/cpu-xnnpack-int8.json > runs/prof/x8.log 2>&1'
echo xnnpack-int8 rc=$? $(date -u) >> runs/prof/chain.log
