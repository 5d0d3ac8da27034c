"""The time-charged fallback of 2026-12-04 against the one before it, on the one shipped CPU profile where it
changes a plan: pretrained ResNet-56 on ``cpu-xnnpack`` at 2x fewer MACs. Both plans and the dense model are
timed in one interleaved run; the earlier fallback is the same code with the charge rate held at 0.

    python bench/targets/latency-vs-flops-2026-12-04/fallback.py OUT.json [TARGET]
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgeprune.backends import measure_interleaved
from edgeprune.graph import build_graph
from edgeprune.latency import collect_layers
from edgeprune.latency.profiler import model_input_shape, prepare_model
from edgeprune.latency.target_profile import load_for_target
from edgeprune.models import create_model
from edgeprune.plan import planner
from edgeprune.prune import prune_model
from edgeprune.targets import channel_align, load_target
from edgeprune.timing import summarize_ratios
from edgeprune.validation import count_macs

out, name = Path(sys.argv[1]), "cifar_resnet56"
target = load_target(sys.argv[2] if len(sys.argv) > 2 else "cpu-xnnpack")
profile = load_for_target(target, None)
model = create_model(name, pretrained=True).eval()
shape = model_input_shape(name, target)
graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=name)
layers = collect_layers(model, shape)
c, budget = planner.PlanConstraints(align=channel_align(target)), planner.Budget.parse("macs", "0.5x")
charged = planner.plan_pruning(model, graph, layers, budget, "latency", profile, constraints=c, side=shape[-1])
step = planner.Planner.best_step
planner.Planner.best_step = lambda self, kind, everything=False, priced=None: step(  # the charge rate held at 0
    self, kind, everything, priced and (priced[0], 0.0))
uncharged = planner.plan_pruning(model, graph, layers, budget, "latency", profile, constraints=c, side=shape[-1])
planner.Planner.best_step = step
models = {"dense": model, "charged": prune_model(model, graph, charged.plan)[0].eval(),
          "uncharged": prune_model(model, graph, uncharged.plan)[0].eval()}
x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
with tempfile.TemporaryDirectory() as tmp:
    runners = {k: prepare_model(target, m, shape, Path(tmp) / f"{k}.onnx") for k, m in models.items()}
    stats = measure_interleaved(runners, x, replace(target, rounds=target.rounds * 4))
rounds = {k: s.round_medians_ms for k, s in stats.items()}
macs = {k: count_macs(m, torch.from_numpy(x))[0] for k, m in models.items()}
rows = {}
for k, result in (("charged", charged), ("uncharged", uncharged)):
    r = summarize_ratios([d / p for d, p in zip(rounds["dense"], rounds[k])])
    predicted = result.dense["latency"] / result.pruned["latency"]
    rows[k] = {"macs_speedup": macs["dense"] / macs[k], "predicted_speedup": predicted,
               "measured_speedup": [r.median, r.low, r.high]}  # fmt: skip
r = summarize_ratios([u / ch for u, ch in zip(rounds["uncharged"], rounds["charged"])])
rows["charged_over_uncharged"] = [r.median, r.low, r.high]
out.write_text(json.dumps({"target": target.name, "model": name, "rows": rows}, indent=1))
print(json.dumps(rows, indent=1))
