"""Diagnostic for docs/benchmarks/yolo.md (issue 21): plan YOLOv8n again at the 0.8x plan's predicted latency
(0.767x, greedy, latency-ranked, align 8) with several importances, with and without the planner's per-group
normalization, and measure the masked model's mAP (removed channels zeroed or set to their mean at every consumer).

Importances: taylor = E over 64 train images of (sum_p a g)^2 with g = d(v . y)/da for a random v ~ N(0, I) over
the raw head outputs y (first-order output change); taylor-mean the same with a - mean (what removal with mean
compensation changes; edgeprune.prune.calibrate.measure_channels is this one, in one pass); taylorp the same on
the decoded probabilities (DFL softmax, class sigmoid); energy, varcontrib as in bench_yolo_importance.py.

    python tools/bench_yolo_replan.py taylor-mean:raw:mean,energy:norm:zero bench/yolo/diag-replan-0.8x.json
"""

import json
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from bench_yolo_importance import consumer_stats, load_images, masked_metrics, scores  # noqa: E402

from edgeprune.graph import build_graph  # noqa: E402
from edgeprune.graph.groups import CONV_IN  # noqa: E402
from edgeprune.latency.layers import collect_layers  # noqa: E402
from edgeprune.latency.profile import Profile  # noqa: E402
from edgeprune.models import create_model  # noqa: E402
from edgeprune.plan.budget import Budget, PlanConstraints  # noqa: E402
from edgeprune.plan.planner import plan_pruning  # noqa: E402

REF, SIDE, DATA = "ultralytics:yolov8n.yaml", 640, "runs/yolo/coco256.yaml"
model = create_model(REF, pretrained=True).eval()
graph = build_graph(model, torch.randn(1, 3, SIDE, SIDE), model_name=REF)
x = load_images("../shared/data/coco256/images/train2017", 64, SIDE)
stats = consumer_stats(model, graph, x)
sc = scores(model, graph, stats)


def prob(y):
    b, _, a = y.shape
    return torch.cat([y[:, :64].view(b, 4, 16, a).softmax(2).flatten(1, 2), y[:, 64:].sigmoid()], 1)


def per_scale(y):
    """Each scale's anchors weighted so that every scale weighs the same (640: 6400, 1600, 400 anchors)."""
    counts = [(SIDE // s) ** 2 for s in (8, 16, 32)]
    w = torch.cat([torch.full((n,), (sum(counts) / (len(counts) * n)) ** 0.5) for n in counts])
    return y * w


def taylor(centered: bool, fn=lambda y: y) -> dict[int, np.ndarray]:
    """E over images of (sum_p a_c(p) g_c(p))^2, g = d(v . y)/da, v ~ N(0, I) per image: ||J_c a_c||^2."""
    paths = {m.path for g in graph.prunable_groups for u in g.units for m in u.members if m.kind == CONV_IN}
    acc: dict[str, torch.Tensor] = {}
    inputs: dict[str, torch.Tensor] = {}

    def keep(path):
        def hook(module, args):
            a = args[0]
            a.retain_grad()
            inputs[path] = a

        return hook

    gen = torch.Generator().manual_seed(0)
    hs = [model.get_submodule(p).register_forward_pre_hook(keep(p)) for p in paths]
    for b in x.split(8):
        b = b.clone().requires_grad_(True)
        y = fn(model(b))
        v = torch.randn(y.shape, generator=gen)
        (y * v).sum().backward()
        for p, a in inputs.items():
            d = a.detach() - (stats[p][0].float().view(1, -1, 1, 1) if centered else 0)
            s = (d * a.grad).sum((2, 3)).double().pow(2).sum(0)
            acc[p] = acc.get(p, 0) + s
        inputs.clear()
        model.zero_grad(set_to_none=True)
    for h in hs:
        h.remove()
    out = {}
    for g in graph.prunable_groups:
        s = np.zeros(g.size)
        for u, unit in enumerate(g.units):
            for m in unit.members:
                if m.kind == CONV_IN and m.path in acc:
                    s[u] += float(acc[m.path][m.index])
        out[g.id] = s / len(x)
    return out


t = time.time()
for p in model.parameters():
    p.requires_grad_(True)
sc["taylor"] = taylor(False) if "taylor:" in sys.argv[1] else None
sc["taylor-mean"] = taylor(True) if "taylor-mean:" in sys.argv[1] else None
wanted = sys.argv[1]
if "taylorp" in wanted:
    sc["taylorp"] = taylor(False, prob)
    sc["taylorp-mean"] = taylor(True, prob)
if "taylors" in wanted:  # per-scale weighted output change
    sc["taylors-mean"] = taylor(True, per_scale)
print("taylor seconds", round(time.time() - t, 1), flush=True)
profile = Profile.load("bench/yolo/cpu-ort-yolov8n.json")
layers = collect_layers(model, (1, 3, SIDE, SIDE))
budget = Budget("latency", 0.767, relative=True)
result = {}
for variant in sys.argv[1].split(","):
    name, norm, mode = variant.split(":")
    c = PlanConstraints(align=8, normalize=norm == "norm")
    r = plan_pruning(model, graph, layers, budget, "latency", profile, sc[name], c, side=SIDE)
    removed = r.plan.removed(graph)
    widths = {w.group: f"{w.size}->{w.kept}" for w in r.widths if w.kept < w.size}
    m = masked_metrics(model, graph, removed, stats, DATA, SIDE, mode)
    result[variant] = {**m, "macs": round(r.pruned["macs"] / r.dense["macs"], 3),
                       "latency": round(r.pruned["latency"] / r.dense["latency"], 3), "widths": widths}  # fmt: skip
    print(variant, json.dumps(result[variant]), flush=True)
    json.dump(result, open(sys.argv[2], "w"), indent=1)
