# MobileNet-V2's plans on cpu-openvino-int8 with the shipped profile (MobileNet-V2 on its own lookup), against
# Torch-Pruning at half the MACs.
cd /work/main && source .venv/bin/activate
# (ran after x32c.sh, 2026-12-03 07:35-07:42 UTC)
flock /tmp/heavy.lock bash -c "python tools/bench_planner.py --target cpu-openvino-int8 --macs 0.5x --model mobilenet_v2 --peer --profile edgeprune/resources/profiles/cpu-openvino-int8--amd-epyc-2c.json --out runs/prof/planner-ov8l-mbv2 > runs/prof/planner-ov8l.log 2>&1"
echo planner-ov8l rc=$? $(date -u) >> runs/prof/x32.log
