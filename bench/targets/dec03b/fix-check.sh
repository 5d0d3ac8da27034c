# After fix-linear.sh: MobileNet-V2's predictor check on both fixed profiles (5 random plans, 2 passes).
cd /work/main && source .venv/bin/activate
# (ran after fix-linear.sh, 2026-12-03 08:14-08:20 UTC)
flock /tmp/heavy.lock bash -c "edgeprune profile check cpu-xnnpack --model mobilenet_v2 --passes 2 --profile runs/prof/fix-x32.json --json > runs/prof/check-fix-x32.json 2> /dev/null"
echo check-x32 rc=$? $(date -u) >> runs/prof/fix.log
flock /tmp/heavy.lock bash -c "edgeprune profile check cpu-openvino-int8 --model mobilenet_v2 --passes 2 --profile runs/prof/fix-ov8.json --json > runs/prof/check-fix-ov8.json 2> /dev/null"
echo check-ov8 rc=$? $(date -u) >> runs/prof/fix.log
