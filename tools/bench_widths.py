"""End-to-end latency of CIFAR ResNet-56 at chosen stage widths: why the planner aligns channel counts.

    python tools/bench_widths.py --target cpu-ort --out bench/widths.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import torch

from edgeprune.atomic import atomic_write_text
from edgeprune.graph import build_graph
from edgeprune.latency.profiler import measure_model
from edgeprune.models import create_model
from edgeprune.prune import Plan, prune_model
from edgeprune.targets import load_target

WIDTHS = [(16, 32, 64), (12, 24, 48), (16, 24, 48), (16, 32, 48), (8, 16, 32), (4, 8, 16)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="cpu-ort")
    ap.add_argument("--out", default="bench/widths.json")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    target = load_target(args.target)
    model = create_model("cifar_resnet56").eval()
    graph = build_graph(model, torch.randn(1, 3, 32, 32), model_name="cifar_resnet56")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for widths in WIDTHS:  # every group of a stage (its size says which) keeps its first channels
            by_size = dict(zip((16, 32, 64), widths))
            keep = {g.id: list(range(by_size[g.size])) for g in graph.prunable_groups}
            pruned = prune_model(model, graph, Plan(graph.model_name, graph.fingerprint, keep))[0]
            ms = measure_model(target, pruned, (1, 3, 32, 32), Path(tmp))
            rows.append({"widths": list(widths), "median_ms": ms})
            print(f"{widths}: {ms:.3f} ms", flush=True)
    atomic_write_text(args.out, json.dumps({"target": args.target, "model": "cifar_resnet56", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
