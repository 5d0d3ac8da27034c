# MobileNet-V2 added to a copy of the shipped cpu-xnnpack profile (cp edgeprune/resources/profiles/
# cpu-xnnpack--amd-epyc-2c.json runs/prof/x32-mbv2.json first). Stopped once for the test suite; x32c.sh resumed
# it from its partial file and ran the rest.
cd /work/main && source .venv/bin/activate
X=runs/prof/x32-mbv2.json; L=runs/prof/x32.log
date -u > $L
flock /tmp/heavy.lock bash -c "/usr/bin/time -f '%e s' edgeprune profile measure cpu-xnnpack --model mobilenet_v2 --budget-s 3900 --out $X >> $L 2>&1"
echo measure rc=$? $(date -u) >> $L
