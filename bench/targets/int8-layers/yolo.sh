#!/usr/bin/env bash
# A pretrained Ultralytics detector (COCO) and a 10 % magnitude shrink of it, validated on cpu-ort-int8 (or $TARGET) at 320² with
# every layer quantized and with int8_layers = "measured": mAP50-95 of the deployed ONNX on the yaml's val images.
#   YAML=/path/to/coco256.yaml [MODEL=yolov8n|yolo11n] [TARGET=cpu-openvino-int8] OUT=/tmp/yolo-il bash bench/targets/int8-layers/yolo.sh
cd "$(dirname "$0")/../../.."; source .venv/bin/activate
Y=${YAML:?a dataset yaml whose path: is absolute}
M=${MODEL:-yolov8n}
O=${OUT:-/tmp/yolo-il}
mkdir -p $O
[ -d $O/pruned ] || edgeprune shrink ultralytics:$M.yaml --pretrained --ratio 0.1 --out $O/pruned > $O/shrink.log 2>&1
for L in all measured; do
  s=$(date +%s)
  edgeprune validate ultralytics:$M.yaml $O/pruned --pretrained --target ${TARGET:-cpu-ort-int8} --data $Y \
    --calibration-count 128 --input-size 320 --int8-layers $L --out $O/val-$L > $O/val-$L.log 2>&1
  echo "$L rc=$? $(( $(date +%s) - s ))s" >> $O/summary.txt
done
