"""Diagnostic for docs/benchmarks/yolo.md: the dense detector with the channels a plan removes zeroed (what
pruning does to its outputs) against the same channels replaced by their mean output on training images
(what folding a removed channel's constant output into the next layer would keep), mAP of each.

    python tools/bench_yolo_bias.py --model ultralytics:yolov8n.yaml --plan runs/yolo/ours-0.8x/plan.json \
        --data runs/yolo/coco256.yaml --images ../shared/data/coco256/images/train2017 --out bench/yolo/diag.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def removed_outputs(model_ref: str, model: torch.nn.Module, plan_path: str, side: int) -> dict[str, list[int]]:
    """Conv block path -> the output channels the plan removes (read from each removed unit's batch norm)."""
    from edgeprune.graph import build_graph
    from edgeprune.prune import Plan

    graph = build_graph(model, torch.randn(1, 3, side, side), model_name=model_ref)
    keep = Plan.load(plan_path).keep
    out: dict[str, set[int]] = {}
    for g in graph.prunable_groups:
        for i, unit in enumerate(g.units):
            if g.id in keep and i not in keep[g.id]:
                for m in unit.members:
                    if m.kind == "norm":
                        out.setdefault(m.path.removesuffix(".bn"), set()).add(m.index)
    return {p: sorted(c) for p, c in out.items()}


def mean_outputs(model: torch.nn.Module, paths: list[str], images: list[Path], side: int) -> dict[str, torch.Tensor]:
    """Per-channel mean output of each block over ``images`` (resized to ``side``², batches of 8)."""
    mods = dict(model.named_modules())
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def record(path: str, out: torch.Tensor) -> None:
        sums[path] = sums.get(path, 0) + out.sum((0, 2, 3))
        counts[path] = counts.get(path, 0) + out.shape[0] * out.shape[2] * out.shape[3]

    hooks = [mods[p].register_forward_hook(lambda m, i, o, p=p: record(p, o)) for p in paths]
    pixels = [np.asarray(Image.open(f).convert("RGB").resize((side, side)), dtype=np.float32) / 255 for f in images]
    x = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in pixels])
    with torch.no_grad():
        for batch in x.split(8):
            model(batch)
    for h in hooks:
        h.remove()
    return {p: sums[p] / counts[p] for p in paths}


def main() -> None:
    from edgeprune.models import create_model
    from edgeprune.train.detect import detection_metrics

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--plan", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", required=True, help="folder of training images for the mean outputs")
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--side", type=int, default=640)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    model = create_model(a.model, pretrained=True).eval()
    removed = removed_outputs(a.model, model, a.plan, a.side)
    mods = dict(model.named_modules())
    result: dict = {"plan": a.plan, "removed_channels": sum(map(len, removed.values()))}
    for mode in ("zeroed", "mean"):
        means = mean_outputs(model, list(removed), sorted(Path(a.images).glob("*.jpg"))[: a.count], a.side) \
            if mode == "mean" else {}  # fmt: skip
        hooks = []
        for p, idx in removed.items():
            def replace(m, i, o, p=p, idx=idx, means=means):
                o = o.clone()
                o[:, idx] = means[p][idx].view(1, -1, 1, 1) if means else 0.0
                return o

            hooks.append(mods[p].register_forward_hook(replace))
        r = detection_metrics(model, a.data, a.side)
        result[mode] = {"mAP50-95": r["mAP50-95"], "mAP50": r["mAP50"]}
        for h in hooks:
            h.remove()
        print(mode, result[mode], flush=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
