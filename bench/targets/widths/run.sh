#!/usr/bin/env bash
# In-network width corrections for the (target, model) pairs whose predictor check missed its interval:
# fit them on a copy of the shipped profile, then run the predictor check on that copy.
# usage: bench/targets/widths/run.sh TARGET:MODEL...
set -u
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
D=bench/targets/widths
for TM in "$@"; do
  T=${TM%%:*}; M=${TM#*:}
  P=$D/$T-$M.json
  cp edgeprune/resources/profiles/$T--amd-epyc-2c.json $P
  echo "== $T $M fit widths $(date -u +%H:%M:%S)"
  edgeprune profile fit "$T" widths --model "$M" --profile $P --out $P > $D/fit-$T-$M.txt 2>&1 || { echo "fit failed: $T $M"; tail -3 $D/fit-$T-$M.txt; continue; }
  echo "== $T $M check $(date -u +%H:%M:%S)"
  edgeprune profile check "$T" --model "$M" --passes 2 --profile $P --json > $D/check-$T-$M.json 2> $D/check-$T-$M.log || { echo "check failed: $T $M"; tail -3 $D/check-$T-$M.log; }
  echo "== $T $M done $(date -u +%H:%M:%S)"
done
