#!/usr/bin/env bash
# A latency budget priced by each cpu-xnnpack profile alone (--measured-rounds 0: what a profile brought from
# elsewhere plans), pretrained ResNet-56 and MobileNet-V2 at 0.7x, each plan validated on this machine against
# the dense model with the profile that planned it (predicted and measured speedup, the 15 % gate):
#   bash bench/targets/rank/latency-budget.sh > bench/targets/rank/latency-budget.log 2>&1
# (records: that log, bench/targets/rank/budget-*/report.md). Another target, profiles or folder (2026-12-06):
#   T=cpu-openvino NEW=... OLD=... R=bench/targets/spikes bash bench/targets/rank/latency-budget.sh
set -eu
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
T=${T:-cpu-xnnpack}
R=${R:-bench/targets/rank}
NEW=${NEW:-edgeprune/resources/profiles/cpu-xnnpack--amd-epyc-2c.json}
OLD=${OLD:-$R/cpu-xnnpack--amd-epyc-2c-shipped-2026-12-05.json}
for M in cifar_resnet56 mobilenet_v2; do
  PRE=$([ $M = cifar_resnet56 ] && echo --pretrained || true)
  for P in new old; do
    PROF=$([ $P = new ] && echo $NEW || echo $OLD)
    rm -rf runs/$T/$M-$P
    rm -rf $R/budget-$M-$P
    if ! edgeprune prune $M $PRE --target $T --latency 0.7x --measured-rounds 0 --profile $PROF \
      --out runs/$T/$M-$P > /tmp/prune.log 2>&1; then
      echo "$M, $P profile: prune refused the budget: $(grep Error /tmp/prune.log)"; continue
    fi
    edgeprune validate $M runs/$T/$M-$P/model $PRE --target $T --profile $PROF --out $R/budget-$M-$P || echo "validate exit $?"
  done
done
