#!/usr/bin/env bash
# The calibration's MACs form (2026-12-06), on stored runs only (no timing): each profile's calibration refitted
# with `edgeprune profile fit --stored`, then every stored two-pass check predicted again with it
# (bench/targets/status/replay_all.py) beside the same checks predicted with the profile as it was.
#   bash bench/targets/macs/run.sh          (seconds; writes refitted profiles and fit-*.txt here,
#                                            replay tables under bench/targets/status/macs-*.md)
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
D=bench/targets/macs
S=edgeprune/resources/profiles
M="--model cifar_resnet56 --model mobilenet_v2"
refit() {  # TARGET SOURCE OUT
  edgeprune profile fit $1 calibration --stored $M --profile $2 --out $3 2>&1 | grep -v Warning | tee $D/fit-$(basename $(dirname $3))-$1.txt
}
mkdir -p $D/shipped $D/settled
for T in cpu-openvino cpu-openvino-int8 cpu-ort-int8 cpu-xnnpack cpu-xnnpack-int8; do refit $T $S/$T--amd-epyc-2c.json $D/shipped/$T--amd-epyc-2c.json; done
# the settled profiles of this AMD EPYC (family 25, model 17) that are not shipped
refit cpu-openvino bench/targets/zen4/cpu-openvino--amd-epyc-2c.json $D/settled/cpu-openvino--amd-epyc-2c.json
refit cpu-xnnpack bench/targets/xnnpack-sessions/cpu-xnnpack--amd-epyc-2c-settled.json $D/settled/cpu-xnnpack--amd-epyc-2c.json
python bench/targets/status/replay_all.py --out macs-before > /dev/null
P=""; for T in cpu-openvino cpu-openvino-int8 cpu-ort-int8 cpu-xnnpack cpu-xnnpack-int8; do P="$P --profile $T=$D/shipped/$T--amd-epyc-2c.json"; done
python bench/targets/status/replay_all.py $P --out macs-shipped-refit > /dev/null
for T in cpu-openvino cpu-xnnpack; do
  python bench/targets/status/replay_all.py --profile $T=$D/settled/$T--amd-epyc-2c.json --out macs-settled-$T > /dev/null
  python bench/targets/status/replay_all.py --profile $T=bench/targets/$([ $T = cpu-openvino ] && echo zen4/cpu-openvino--amd-epyc-2c.json || echo xnnpack-sessions/cpu-xnnpack--amd-epyc-2c-settled.json) --out macs-settled-before-$T > /dev/null
done
python bench/targets/macs/compare.py macs-before macs-shipped-refit > $D/compare-shipped.md
for T in cpu-openvino cpu-xnnpack; do
  python bench/targets/macs/compare.py macs-settled-before-$T macs-settled-$T $T > $D/compare-settled-$T.md
done
# the leave-one-out figures the docs quote for the two rules, and cpu-ort's settled ResNet-56
{ python $D/forms.py cpu-openvino-int8 bench/targets/zen4/cpu-openvino-int8--amd-epyc-2c.json bench/targets/zen4/check-cpu-openvino-int8.json mobilenet_v2
  python $D/forms.py cpu-ort $S/cpu-ort--amd-epyc-2c.json bench/targets/status/check-cpu-ort.json mobilenet_v2 --unpaired-too
  python $D/forms.py cpu-ort bench/targets/zen4/cpu-ort--amd-epyc-2c.json bench/targets/zen4/check-cpu-ort.json cifar_resnet56; } > $D/forms.txt
