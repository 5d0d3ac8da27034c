# After `edgeprune profile measure cpu-xnnpack --model mobilenet_v2 --budget-s 3900 --out runs/prof/x32-mbv2.json`
# (into a copy of the shipped profile; x32.sh): lookups refitted per model from the stored runs (relookup.py),
# then the predictor check on both models, the staircase plot and the planner benchmark against Torch-Pruning;
# then MobileNet-V2's plans on cpu-openvino-int8 with its per-model lookup.
cd /work/main && source .venv/bin/activate
while kill -0 1629 2>/dev/null; do sleep 10; done
X=runs/prof/x32-lookups.json; L=runs/prof/x32.log
# a measure stopped by its --budget-s resumes from its partial file
until python -c "import json, sys; sys.exit('mobilenet_v2' not in json.load(open('runs/prof/x32-mbv2.json'))['calibration'])"; do
  flock /tmp/heavy.lock bash -c "edgeprune profile measure cpu-xnnpack --model mobilenet_v2 --budget-s 3000 --out runs/prof/x32-mbv2.json >> $L 2>&1" || sleep 1
done
echo measured $(date -u) >> $L
python bench/targets/dec03b/relookup.py cpu-xnnpack runs/prof/x32-mbv2.json $X > runs/prof/relookup-x32-pre.json || exit 1
flock /tmp/heavy.lock bash -c "edgeprune profile check cpu-xnnpack --model mobilenet_v2 --model cifar_resnet56 --passes 2 --profile $X --json > runs/prof/check-x32.json 2> runs/prof/check-x32.err"
echo check rc=$? $(date -u) >> $L
flock /tmp/heavy.lock bash -c "edgeprune profile plot cpu-xnnpack --model cifar_resnet56 --model mobilenet_v2 --profile $X --out runs/prof/staircase-cpu-xnnpack.png >> $L 2>&1"
echo plot rc=$? $(date -u) >> $L
flock /tmp/heavy.lock bash -c "python tools/bench_planner.py --target cpu-xnnpack --macs 0.5x --model mobilenet_v2 --peer --profile $X --out runs/prof/planner-x32-mbv2 > runs/prof/planner-x32.log 2>&1"
echo planner rc=$? $(date -u) >> $L
flock /tmp/heavy.lock bash -c "python tools/bench_planner.py --target cpu-openvino-int8 --macs 0.5x --model mobilenet_v2 --peer --profile runs/prof/ov8-lookups.json --out runs/prof/planner-ov8l-mbv2 > runs/prof/planner-ov8l.log 2>&1"
echo planner-ov8 rc=$? $(date -u) >> $L
