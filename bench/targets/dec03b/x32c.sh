# After `edgeprune profile measure cpu-xnnpack --model mobilenet_v2 --budget-s 3900 --out runs/prof/x32-mbv2.json`
# (into a copy of the shipped profile; x32.sh): lookups refitted per model from the stored runs (relookup.py),
# then the predictor check on MobileNet-V2 (ResNet-56's predictions are unchanged), the staircase plot and the planner benchmark against Torch-Pruning;
cd /work/main && source .venv/bin/activate
while kill -0 5426 2>/dev/null; do sleep 10; done
X=runs/prof/x32-lookups.json; L=runs/prof/x32.log
# a measure stopped by its --budget-s resumes from its partial file
until python -c "import json, sys; sys.exit('mobilenet_v2' not in json.load(open('runs/prof/x32-mbv2.json'))['calibration'])"; do
  flock /tmp/heavy.lock bash -c "edgeprune profile measure cpu-xnnpack --model mobilenet_v2 --budget-s 3000 --out runs/prof/x32-mbv2.json >> $L 2>&1" || sleep 1
done
echo measured $(date -u) >> $L
# ResNet-56 keeps its own lookup: its predictions on the shipped profile's check plans must come out unchanged
python bench/targets/dec03b/relookup.py cpu-xnnpack runs/prof/x32-mbv2.json $X bench/profiles/check-cpu-xnnpack.json > runs/prof/relookup-x32.json || exit 1
flock /tmp/heavy.lock bash -c "edgeprune profile check cpu-xnnpack --model mobilenet_v2 --passes 2 --profile $X --json > runs/prof/check-x32.json 2> runs/prof/check-x32.err"
echo check rc=$? $(date -u) >> $L
flock /tmp/heavy.lock bash -c "edgeprune profile plot cpu-xnnpack --model cifar_resnet56 --model mobilenet_v2 --profile $X --out runs/prof/staircase-cpu-xnnpack.png >> $L 2>&1"
echo plot rc=$? $(date -u) >> $L
flock /tmp/heavy.lock bash -c "python tools/bench_planner.py --target cpu-xnnpack --macs 0.5x --model mobilenet_v2 --peer --profile $X --out runs/prof/planner-x32-mbv2 > runs/prof/planner-x32.log 2>&1"
echo planner rc=$? $(date -u) >> $L
