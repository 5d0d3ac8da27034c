"""End-to-end latency of CIFAR ResNet-56 at chosen stage widths: why the planner aligns channel counts.

    python tools/bench_widths.py --target cpu-ort --out bench/widths.json

``--inner`` narrows only the blocks' inner channels (residual streams stay whole, as the planner's
default does), times the variants in interleaved rounds and puts the profile's prediction beside each:

    python tools/bench_widths.py --inner --out bench/widths-inner.json
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
INNER_WIDTHS = [(16, 32, 64), (8, 32, 64), (16, 16, 64), (16, 32, 32), (16, 32, 16), (16, 16, 16), (8, 16, 16),
                (8, 8, 16), (8, 16, 32)]  # fmt: skip


def inner_rows(model, graph, target, rounds: int, profile_path: str | None = None,
               widths_list=INNER_WIDTHS) -> list[dict]:
    """Inner channels only, timed in interleaved rounds (bench_planner's), with a profile's prediction."""
    from bench_planner import measure

    from edgeprune.latency.layers import collect_layers
    from edgeprune.latency.model import LatencyModel
    from edgeprune.latency.profile import Profile, find_profile

    profile = Profile.load(profile_path or find_profile(target.name, target.backend))
    variants, predicted = {}, {}
    for widths in widths_list:
        by_size = dict(zip((16, 32, 64), widths))
        keep = {g.id: list(range(by_size[g.size])) for g in graph.prunable_groups if not g.shared}
        pruned = prune_model(model, graph, Plan(graph.model_name, graph.fingerprint, keep))[0].eval()
        variants[widths] = (pruned, None)
        predicted[widths] = LatencyModel(profile, "cifar_resnet56").predict(collect_layers(pruned, (1, 3, 32, 32))).ms
    measured = measure("cifar_resnet56", target, variants, rounds)
    rows = []
    for w in widths_list:
        rows.append({"inner_widths": list(w), "median_ms": measured[w], "predicted_ms": predicted[w]})
        print(f"inner {w}: measured {measured[w]:.3f} ms, predicted {predicted[w]:.3f} ms", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="cpu-ort")
    ap.add_argument("--out", default="bench/widths.json")
    ap.add_argument("--inner", action="store_true", help="narrow inner channels only; streams stay whole")
    ap.add_argument("--rounds", type=int, default=7, help="with --inner: timing, times the target's rounds")
    ap.add_argument("--profile", help="with --inner: the profile that predicts (default: the committed one)")
    ap.add_argument("--widths", help="with --inner: stage inner widths to time, e.g. '16,32,64;8,8,48'")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    target = load_target(args.target)
    model = create_model("cifar_resnet56").eval()
    graph = build_graph(model, torch.randn(1, 3, 32, 32), model_name="cifar_resnet56")
    if args.inner:
        chosen = [tuple(int(c) for c in w.split(",")) for w in args.widths.split(";")] if args.widths else INNER_WIDTHS
        rows = inner_rows(model, graph, target, args.rounds, args.profile, chosen)
        meta = {"target": args.target, "model": "cifar_resnet56", "inner_only": True,
                "profile": args.profile or "committed"}  # fmt: skip
        atomic_write_text(args.out, json.dumps({**meta, "rows": rows}, indent=1))
        return
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
