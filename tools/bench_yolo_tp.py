"""Torch-Pruning on an Ultralytics YOLO, for docs/benchmarks/yolo.md: a uniform magnitude ratio, round_to 8,
the head's output convs and the DFL ignored. Writes what happened (MACs, or the exact error) as JSON.

    python tools/bench_yolo_tp.py --model ultralytics:PATH/yolov8n.pt --ratio 0.2 --out bench/yolo/torch-pruning.json
"""

from __future__ import annotations

import argparse
import json
import traceback
from importlib.metadata import version
from pathlib import Path

import torch


def try_prune(model_ref: str, ratio: float, side: int) -> list[dict]:
    """One record per root tried: the YoloRaw edgeprune builds, and the Ultralytics DetectionModel inside."""
    import torch_pruning as tp

    from edgeprune.models import create_model

    records = []
    for root_name in ("YoloRaw", "DetectionModel"):
        raw = create_model(model_ref, pretrained=not model_ref.endswith(".pt")).eval()  # a yaml: its checkpoint
        root = raw if root_name == "YoloRaw" else raw.model
        # Ultralytics loads checkpoints frozen; Torch-Pruning traces its graph through autograd
        raw.requires_grad_(True)
        x = torch.randn(1, 3, side, side)
        det = raw.model.model[-1]
        ignored = [seq[-1] for seq in list(det.cv2) + list(det.cv3)] + [det.dfl]
        base, _ = tp.utils.count_ops_and_params(raw, x)
        record = {"root": root_name, "ratio": ratio, "round_to": 8, "input": side, "dense_macs": int(base),
                  "torch_pruning": version("torch-pruning")}  # fmt: skip
        try:
            pruner = tp.pruner.MetaPruner(root, x, importance=tp.importance.MagnitudeImportance(p=2),
                                          pruning_ratio=ratio, round_to=8, ignored_layers=ignored)  # fmt: skip
            pruner.step()
            macs, _ = tp.utils.count_ops_and_params(raw, x)
            with torch.no_grad():
                raw(x)
            record.update(ok=True, macs=int(macs))
        except Exception as exc:  # the point is to record whatever Torch-Pruning raises
            record.update(ok=False, error=f"{type(exc).__name__}: {exc}",
                          where=traceback.format_exc().strip().splitlines()[-3].strip())  # fmt: skip
        records.append(record)
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ratio", type=float, default=0.2)
    ap.add_argument("--input-size", type=int, default=640)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    records = try_prune(args.model, args.ratio, args.input_size)
    Path(args.out).write_text(json.dumps({"model": args.model, "runs": records}, indent=1) + "\n")
    for r in records:
        print(r["root"], "ok" if r["ok"] else r["error"])


if __name__ == "__main__":
    main()
