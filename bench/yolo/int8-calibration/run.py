"""mAP50-95 of YOLOv8n at 640 quantized by each calibration method through edgeprune's int8 target, on coco256's
128 val images, calibrated on its 128 train images (no timing: the quantized graph is the same for every method).
usage: python bench/yolo/int8-calibration/run.py OUT.json METHOD..."""
import json
import resource
import sys
import time
from pathlib import Path

import torch

from edgeprune.backends import prepare_runner
from edgeprune.export import export_onnx
from edgeprune.paths import data_root
from edgeprune.targets import target_from_dict
from edgeprune.train.calibration import calibration_images
from edgeprune.validation import resolve_model, score_on

root = data_root()
tmp = Path("/tmp/int8-calibration")
tmp.mkdir(exist_ok=True)
text = (root / "coco256" / "coco256.yaml").read_text()
data = tmp / "coco256.yaml"  # a copy with its path set; the shared file stays as it is
data.write_text("\n".join(f"path: {root / 'coco256'}" if s.startswith("path:") else s for s in text.splitlines()))
ref = resolve_model(f"ultralytics:{root}/pretrained/ultralytics/yolov8n.pt", side=640)
shape = (1, 3, 640, 640)
images = calibration_images(str(data), 128, ref.module, ref.name, 640)
out = {}
for method in sys.argv[2:]:
    t = time.time()
    export_onnx(ref.module, torch.randn(shape), tmp / f"c-{method}.onnx")
    target = target_from_dict("t", {"backend": "onnxruntime", "threads": 2, "precision": "int8",
                                    "calibration_count": 128, "calibration_method": method})
    runner = prepare_runner(target, tmp / f"c-{method}.onnx", shape, images)
    m, _ = score_on(ref.module, str(data), ref.name, 640, runner, 1)
    out[method] = m
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(method, round(100 * m, 2), f"{time.time() - t:.0f}s", "maxrss GB", rss, flush=True)
Path(sys.argv[1]).write_text(json.dumps(out))
