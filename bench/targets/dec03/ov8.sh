cd /work/main && source .venv/bin/activate
date -u > runs/prof/ov8.start
flock /tmp/heavy.lock bash -c '/usr/bin/time -v edgeprune profile measure cpu-openvino-int8 --model mobilenet_v2 --out runs/prof/cpu-openvino-int8.json' > runs/prof/ov8.log 2>&1
echo rc=$? >> runs/prof/ov8.log; date -u >> runs/prof/ov8.log
