"""Diagnostic for docs/benchmarks/yolo.md (issue 21): why a pruned YOLOv8n collapses. With the per-group widths of
a plan result (``prune-ours-0.8x.json``) fixed, which channels go is chosen by several importances, and the
masked model's mAP (removed channels zeroed, or replaced by their mean, at every consumer) is measured for
each; then each cut group alone at its planned width (which cuts hurt).

    python tools/bench_yolo_importance.py --widths bench/yolo/prune-ours-0.8x.json --data runs/yolo/coco256.yaml \
        --images ../shared/data/coco256/images/train2017 --out bench/yolo/diag-importance-0.8x.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from edgeprune.graph.groups import CONV_IN, CONV_OUT, NORM


def load_images(folder: str, count: int, side: int) -> torch.Tensor:
    files = sorted(Path(folder).glob("*.jpg"))[:count]
    arrays = [np.asarray(Image.open(f).convert("RGB").resize((side, side)), dtype=np.float32) / 255 for f in files]
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays])


def consumer_stats(model, graph, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Consumer path -> (mean, mean square) of each input channel over ``x``."""
    paths = {m.path for g in graph.prunable_groups for u in g.units for m in u.members if m.kind == CONV_IN}
    sums: dict[str, list] = {}

    def rec(path):
        def hook(module, args):
            a = args[0].double()
            s = sums.setdefault(path, [0, 0, 0])
            s[0] = s[0] + a.sum((0, 2, 3))
            s[1] = s[1] + a.pow(2).sum((0, 2, 3))
            s[2] += a.shape[0] * a.shape[2] * a.shape[3]

        return hook

    handles = [model.get_submodule(p).register_forward_pre_hook(rec(p)) for p in paths]
    with torch.no_grad():
        for b in x.split(8):
            model(b)
    for h in handles:
        h.remove()
    return {p: (s[0] / s[2], s[1] / s[2]) for p, s in sums.items()}


def scores(model, graph, stats) -> dict[str, dict[int, np.ndarray]]:
    from edgeprune.prune import magnitude_scores

    out: dict[str, dict[int, np.ndarray]] = {k: {} for k in ("energy", "energy+bias", "act2", "contrib", "varcontrib")}
    mods = dict(model.named_modules())
    for g in graph.prunable_groups:
        e, eb, a2, c, vc = (np.zeros(g.size) for _ in range(5))
        e[:] = magnitude_scores(model, g).numpy()
        eb[:] = e
        for u, unit in enumerate(g.units):
            for m in unit.members:
                mod = mods[m.path]
                if m.kind == NORM:  # identity BN here: its bias is the channel's folded constant
                    eb[u] += float(mod.bias[m.index]) ** 2
                elif m.kind == CONV_OUT and mod.bias is not None:
                    eb[u] += float(mod.bias[m.index]) ** 2
                elif m.kind == CONV_IN and mod.groups == 1 and m.path in stats:
                    mean, sq = (float(t[m.index]) for t in stats[m.path])
                    w2 = float(mod.weight.detach()[:, m.index].double().pow(2).sum())
                    a2[u] += sq
                    c[u] += sq * w2
                    vc[u] += (sq - mean**2) * w2
        out["energy"][g.id], out["energy+bias"][g.id], out["act2"][g.id] = e, eb, a2
        out["contrib"][g.id], out["varcontrib"][g.id] = c, vc
    return out


def removed_by(graph, widths: dict[int, int], score: dict[int, np.ndarray]) -> dict[int, list[int]]:
    out = {}
    for g in graph.prunable_groups:
        if g.id in widths and widths[g.id] < g.size:
            order = sorted(g.prunable_units, key=lambda i: (score[g.id][i], i))
            out[g.id] = order[: g.size - widths[g.id]]
    return out


def masked_metrics(model, graph, removed, stats, data: str, side: int, mode: str) -> dict:
    """mAP of ``model`` with the ``removed`` units' channels zeroed (or set to their mean) at every consumer."""
    from edgeprune.train.detect import detection_metrics

    per_path: dict[str, list[int]] = {}
    for gid, units in removed.items():
        for u in units:
            for m in graph.groups[gid].units[u].members:
                if m.kind == CONV_IN:
                    per_path.setdefault(m.path, []).append(m.index)
    handles = []
    for path, idx in per_path.items():
        index = torch.tensor(sorted(idx))
        value = stats[path][0][index].float().view(1, -1, 1, 1) if mode == "mean" else 0.0

        def hook(module, args, index=index, value=value):
            x = args[0].clone()
            x[:, index] = value
            return (x, *args[1:])

        handles.append(model.get_submodule(path).register_forward_pre_hook(hook))
    try:
        r = detection_metrics(model, data, side)
    finally:
        for h in handles:
            h.remove()
    return {"mAP50-95": round(100 * r["mAP50-95"], 2), "mAP50": round(100 * r["mAP50"], 2)}


def main() -> None:
    from edgeprune.graph import build_graph
    from edgeprune.models import create_model
    from edgeprune.prune import Plan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ultralytics:yolov8n.yaml")
    ap.add_argument("--widths", required=True, help="a plan result JSON (its groups' kept widths)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--side", type=int, default=640)
    ap.add_argument("--variants", default="energy:zero,energy:mean,energy+bias:zero,act2:zero,contrib:zero,"
                    "contrib:mean,varcontrib:mean")  # fmt: skip
    ap.add_argument("--single", default="energy:zero", help="importance:mode for each cut group alone ('' skips)")
    ap.add_argument("--plan", default=None, help="with --single: each group this plan.json cuts, its channels")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    model = create_model(a.model, pretrained=True).eval()
    graph = build_graph(model, torch.randn(1, 3, a.side, a.side), model_name=a.model)
    widths = {w["group"]: w["kept"] for w in json.loads(Path(a.widths).read_text())["groups"]}
    t = time.time()
    stats = consumer_stats(model, graph, load_images(a.images, a.count, a.side))
    all_scores = scores(model, graph, stats)
    result: dict = {"widths": a.widths, "calibration_images": a.count, "stats_seconds": round(time.time() - t, 1)}
    out = Path(a.out)
    for variant in filter(None, a.variants.split(",")):
        name, mode = variant.split(":")
        removed = removed_by(graph, widths, all_scores[name])
        result[variant] = masked_metrics(model, graph, removed, stats, a.data, a.side, mode)
        print(variant, result[variant], flush=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    if a.single:
        name, mode = a.single.split(":")
        removed = Plan.load(a.plan).removed(graph) if a.plan else removed_by(graph, widths, all_scores[name])
        for gid, units in removed.items():
            key = f"only group {gid} ({graph.groups[gid].size}->{widths[gid]}) {a.plan or a.single}"
            result[key] = masked_metrics(model, graph, {gid: units}, stats, a.data, a.side, mode)
            result[key]["layers"] = graph.groups[gid].describe()
            print(key, result[key], flush=True)
            out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
