#!/usr/bin/env bash
# Models no target benchmark covered, on the int8 targets (or any TARGETS): prune to 0.5x MACs with default
# settings (the shipped profiles; the model's layers mostly not in them), then validate the deployed artifact, an
# int8 one calibrated on IMAGES. A combination whose OUT/TAG.done exists is skipped.
#   IMAGES=/path/to/folder OUT=/tmp/func [MODELS="m1 m2"] [TARGETS="t1 t2"] bash bench/targets/unbenchmarked-int8/run.sh
cd "$(dirname "$0")/../../.."; source .venv/bin/activate
OUT=${OUT:-/tmp/func}
IMAGES=${IMAGES:?an image folder: train/ and val/ with class subfolders}
mkdir -p $OUT
for T in ${TARGETS:-cpu-xnnpack-int8 cpu-openvino-int8 cpu-ort-int8}; do
 for M in ${MODELS:-timm:mobilenetv4_conv_small shufflenet_v2_x1_0 regnet_y_400mf}; do
  tag=$T-${M//:/_}
  [ -f $OUT/$tag.done ] && continue
  s=$(date +%s)
  rm -rf $OUT/$tag $OUT/$tag-val  # a combination not done starts afresh (prune refuses a folder in use)
  edgeprune prune $M --target $T --macs 0.5x --out $OUT/$tag > $OUT/$tag.prune.log 2>&1; rp=$?
  rv=-
  if [ $rp = 0 ]; then
    cal=(); [[ $T == *int8 ]] && cal=(--calibration-data $IMAGES --calibration-count 64)
    edgeprune validate $M $OUT/$tag/model --target $T "${cal[@]}" --out $OUT/$tag-val > $OUT/$tag.val.log 2>&1; rv=$?
  fi
  echo "$tag prune=$rp validate=$rv $(( $(date +%s) - s ))s" | tee -a $OUT/summary.txt
  touch $OUT/$tag.done
 done
done
