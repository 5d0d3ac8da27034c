"""Accuracy (a detector: mAP50-95) of one model quantized by each calibration method through edgeprune's int8
onnxruntime target, scored on the data's test / val split and calibrated on its train split. No timing: the
quantized graph is the same for every method, only its ranges differ.

usage: python bench/int8-calibration/run.py OUT.json [--model REF] [--data NAME|YAML] [--count N] [--side PX]
           [--methods minmax entropy percentile]
The defaults are the YOLOv8n run: the data folder's COCO-pretrained yolov8n.pt on coco256 at 640, 128 images.
A classifier: --model cifar_resnet56 --data cifar10-lossless --count 300."""
import argparse
import json
import resource
import time
from pathlib import Path

import torch

from edgeprune.backends import prepare_runner
from edgeprune.export import export_onnx
from edgeprune.paths import data_root
from edgeprune.targets import CALIBRATION_METHODS, target_from_dict
from edgeprune.train.calibration import calibration_images
from edgeprune.validation import resolve_model, score_on

root = data_root()
p = argparse.ArgumentParser()
p.add_argument("out", type=Path)
p.add_argument("--model", default=f"ultralytics:{root}/pretrained/ultralytics/yolov8n.pt")
p.add_argument("--data", default="coco256", help="a named data set, or coco256 (the data folder's, path set)")
p.add_argument("--count", type=int, default=128)
p.add_argument("--side", type=int, default=None)
p.add_argument("--methods", nargs="+", default=list(CALIBRATION_METHODS), choices=CALIBRATION_METHODS)
a = p.parse_args()

tmp = Path("/tmp/int8-calibration")
tmp.mkdir(exist_ok=True)
data = a.data
if data == "coco256":  # a copy with its path set; the shared file stays as it is
    text = (root / "coco256" / "coco256.yaml").read_text()
    data = str(tmp / "coco256.yaml")
    Path(data).write_text("\n".join(f"path: {root / 'coco256'}" if s.startswith("path:") else s
                                    for s in text.splitlines()))
ref = resolve_model(a.model, pretrained=True, side=a.side)
shape = (1, *ref.input_chw)
images = calibration_images(data, a.count, ref.module, ref.name, shape[-1])
out = {"model": a.model, "data": a.data, "count": a.count, "side": shape[-1]}
out["torch"], _ = score_on(ref.module, data, ref.name, shape[-1])
print("torch", round(100 * out["torch"], 2), flush=True)
export_onnx(ref.module, torch.randn(shape), tmp / "model.onnx")  # one export: the methods differ only in ranges
for method in a.methods:
    t = time.time()
    target = target_from_dict("t", {"backend": "onnxruntime", "threads": 2, "precision": "int8",
                                    "calibration_count": a.count, "calibration_method": method})
    runner = prepare_runner(target, tmp / "model.onnx", shape, images)
    out[method], _ = score_on(ref.module, data, ref.name, shape[-1], runner, 1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(method, round(100 * out[method], 2), f"{time.time() - t:.0f}s", "maxrss GB", round(rss, 1), flush=True)
a.out.parent.mkdir(parents=True, exist_ok=True)
a.out.write_text(json.dumps(out, indent=1) + "\n")
