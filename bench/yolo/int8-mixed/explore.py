"""Where YOLOv8n loses mAP in int8 on onnxruntime: the dense model at 640 quantized whole and with parts kept in
float, each scored on coco256's 128 val images (calibrated on its 128 train images). No timing.
usage: python bench/yolo/int8-mixed/explore.py OUT.json [parts|modules|ops|options]"""
import json
import sys
import time
from pathlib import Path

import onnx
import torch
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

from edgeprune.backends import prepare_runner
from edgeprune.backends.quantize import _Reader, calibration_batches, onnx_input
from edgeprune.export import export_onnx
from edgeprune.paths import data_root
from edgeprune.targets import target_from_dict
from edgeprune.train.calibration import calibration_images
from edgeprune.validation import resolve_model, score_on

root = data_root()
tmp = Path("/tmp/int8-mixed")
tmp.mkdir(exist_ok=True)
text = (root / "coco256" / "coco256.yaml").read_text()
data = tmp / "coco256.yaml"
data.write_text("\n".join(f"path: {root / 'coco256'}" if s.startswith("path:") else s for s in text.splitlines()))
ref = resolve_model(f"ultralytics:{root}/pretrained/ultralytics/yolov8n.pt", side=640)
shape = (1, 3, 640, 640)
fp32 = tmp / "m.onnx"
export_onnx(ref.module, torch.randn(shape), fp32)
images = calibration_images(str(data), 128, ref.module, ref.name, 640)
graph = onnx.load(str(fp32)).graph


def scopes(node):
    meta = {p.key: p.value for p in node.metadata_props}
    return eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))


def nodes_where(pred):
    return [n.name for n in graph.node if pred(n, [s for s in scopes(n) if s.startswith("model.")])]


tail = nodes_where(lambda n, s: not any(x.count(".") >= 4 for x in s) and any("model.22" in x for x in s) or not s)
final = nodes_where(lambda n, s: n.op_type == "Conv" and any(
    x.endswith(".2") and (".cv2." in x or ".cv3." in x) for x in s if x.count(".") == 4))
head = nodes_where(lambda n, s: any(x.startswith("model.model.22") for x in s))
def module_nodes(prefix):
    return nodes_where(lambda n, s: any(x == prefix or x.startswith(prefix + ".") for x in s))


mode = sys.argv[2] if len(sys.argv) > 2 else "parts"
if mode == "parts":  # percentile and entropy calibration need more memory than this machine has at 640
    variants = {"all int8": [], "output assembly in float": tail, "assembly + last convs in float": tail + final,
                "whole head in float": head}
elif mode == "modules":  # one module of the network in float at a time
    variants = {f"model.{i} in float": module_nodes(f"model.model.{i}") for i in range(23)}
elif mode == "options":  # quantizer settings, everything quantized (the histogram calibrators on 32 images)
    variants = {"moving-average min/max": dict(extra_options={"CalibMovingAverage": True}),
                "int8 activations": dict(activation_type=QuantType.QInt8),
                "percentile 99.999, 32 images": dict(calibrate_method=CalibrationMethod.Percentile, images=32),
                "entropy, 32 images": dict(calibrate_method=CalibrationMethod.Entropy, images=32),
                "SiLU + Concat in float": dict(nodes_to_exclude=[n.name for n in graph.node
                                                                 if n.op_type in ("Sigmoid", "Mul", "Concat")])}
else:  # op types in float everywhere
    variants = {f"{ops} in float": [n.name for n in graph.node if n.op_type in ops.split("+")]
                for ops in ("Sigmoid+Mul", "Add", "Concat", "MaxPool", "Resize")}
name, ishape = onnx_input(fp32)
run = target_from_dict("t", {"backend": "onnxruntime", "threads": 2})
results = {"torch": score_on(ref.module, str(data), ref.name, 640)[0]}
print("torch", results["torch"], "tail", len(tail), "final", len(final), "head", len(head), flush=True)
for label, v in variants.items():
    t = time.time()
    out = tmp / (label.replace(" ", "_").replace(",", "").replace("/", "-") + ".onnx")
    v = dict(v) if isinstance(v, dict) else {"nodes_to_exclude": v}
    calib = images[: v.pop("images", len(images))]
    quantize_static(str(fp32), str(out), _Reader(name, calibration_batches(calib, ishape[0])),
                    **{"quant_format": QuantFormat.QDQ, "per_channel": True, "activation_type": QuantType.QUInt8,
                       "weight_type": QuantType.QInt8, **v})
    m, _ = score_on(ref.module, str(data), ref.name, 640, prepare_runner(run, out, shape), 1)
    results[label] = m
    print(label, round(m * 100, 2), f"{time.time() - t:.0f}s", flush=True)
Path(sys.argv[1]).write_text(json.dumps(results, indent=1))
