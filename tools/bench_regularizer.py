"""Regularizer overhead per training step (forward + backward + optimizer + regularizer), CPU.

    python tools/bench_regularizer.py --out bench/regularizer.json

For each model, every regularizer and plain training take turns step by step (round-robin), so drift
of the machine hits all variants alike; reports the median step time and the overhead over "none".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from edgeprune.graph import build_graph
from edgeprune.models import create_model
from edgeprune.regularize import SparsityHook, list_regularizers
from edgeprune.train.trainer import TrainConfig, make_optimizer

CASES = [("cifar_resnet56", 32, 64), ("resnet50", 224, 8)]  # (model, input side, batch)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/regularizer.json")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for name, size, batch in CASES:
        torch.manual_seed(0)
        model = create_model(name).train()
        graph = build_graph(model, torch.randn(1, 3, size, size))
        hooks = {r: SparsityHook.from_graph(model, graph, r) for r in list_regularizers()}
        opt = make_optimizer(model, TrainConfig(lr=1e-4))
        x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
        times: dict[str, list[float]] = {r: [] for r in hooks}
        for step in range(args.steps + 2):  # two warm-up rounds
            for r, hook in hooks.items():
                t0 = time.perf_counter()
                loss = F.cross_entropy(model(x)[:, :10], y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                hook.after_backward()  # the trainer's path: the penalty's gradient after backward
                opt.step()
                hook.after_step()
                if step >= 2:
                    times[r].append(time.perf_counter() - t0)
        base, base_mean = statistics.median(times["none"]), statistics.mean(times["none"])
        results[name] = {
            r: {
                "median_step_ms": 1e3 * statistics.median(t),
                "overhead_pct": 100 * (statistics.median(t) - base) / base,
                "overhead_pct_mean": 100 * (statistics.mean(t) - base_mean) / base_mean,  # includes SSR's prox steps
            }
            for r, t in times.items()
        }
        print(name, json.dumps({r: round(v["overhead_pct"], 2) for r, v in results[name].items()}), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "steps": args.steps, "cases": CASES, "device": "cpu",
            "note": "SSR's prox runs every 10 steps (default): the median shows the W-step, the mean includes prox"}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
