#!/usr/bin/env bash
# Build .gpu/, what bench/gpu/run.sh needs on a GPU machine that has torch but not edgeprune's other
# dependencies or data: the pure-Python packages copied from this checkout's venv (site/), the coco256 data
# and the YOLOv8n checkpoint (data/, used as EDGEPRUNE_DATA), and the pruned model to fine-tune (p-0.7x/).
#   bash bench/gpu/bundle.sh [PRUNED_MODEL_FOLDER]     (default: runs/yolo-ft640/p-0.7x/model)
# .gpu/ is about 64 MB; keep it out of git (.git/info/exclude) and carry it to the machine.
set -eu
cd "$(dirname "$0")/../.."
MODEL=${1:-runs/yolo-ft640/p-0.7x/model}
DATA=${EDGEPRUNE_DATA:-../shared/data}
SITE=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
[ -f "$MODEL/arch.json" ] || { echo "no pruned model at $MODEL (bash bench/yolo/finetune-640/run.sh makes one)" >&2; exit 1; }
[ -d "$DATA/coco256" ] || { echo "no coco256 under $DATA (set EDGEPRUNE_DATA)" >&2; exit 1; }
rm -rf .gpu.tmp
mkdir -p .gpu.tmp/site .gpu.tmp/data/pretrained/ultralytics .gpu.tmp/p-0.7x
for pkg in ultralytics ultralytics_platform thop fvcore iopath yacs termcolor platformdirs torch_pruning; do
  cp -r "$SITE/$pkg" .gpu.tmp/site/
done
# their dist-info folders too: importlib.metadata must find the versions
for pkg in ultralytics ultralytics_platform ultralytics_thop fvcore iopath yacs termcolor platformdirs torch_pruning; do
  cp -r "$SITE"/"$pkg"-*.dist-info .gpu.tmp/site/
done
find .gpu.tmp/site -name __pycache__ -type d -prune -exec rm -rf {} +
cp -r "$DATA/coco256" .gpu.tmp/data/
cp "$DATA/pretrained/ultralytics/yolov8n.pt" .gpu.tmp/data/pretrained/ultralytics/
cp -r "$MODEL" .gpu.tmp/p-0.7x/model
chmod -R u+w .gpu.tmp
rm -rf .gpu && mv .gpu.tmp .gpu
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
du -sh .gpu
echo "the working tree travels too: tracked files under bench/, docs/ and tests/ (about 16 MB) may need to be"
echo "left out of the copy sent to the machine to stay under its size limit"
