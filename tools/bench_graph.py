"""Time to build channel groups: edgeprune vs Torch-Pruning's DependencyGraph, same model, same process.

    python tools/bench_graph.py --out bench/graph.json

Median of --repeats runs after one warm-up; torch threads fixed. Torch-Pruning is optional (the `bench`
extra); without it only edgeprune is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from edgeprune.graph import build_graph
from edgeprune.models import create_model


def _dist_version(dist: str) -> str:
    from importlib.metadata import version  # the package's own __version__ string can lag its release

    return version(dist)


CASES = [("resnet50", 224), ("cifar_resnet56", 32), ("mobilenet_v2", 224)]


def median_ms(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), max(times) - min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/graph.json")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import torch_pruning as tp
    except ImportError:
        tp = None
        print("torch-pruning not installed (pip install -e '.[bench]'): timing edgeprune only", file=sys.stderr)
    rows = []
    for name, size in CASES:
        model = create_model(name).eval()
        x = torch.randn(1, 3, size, size)
        row = {"model": name, "input": size}
        ours = median_ms(lambda m=model, x=x: build_graph(m, x), args.repeats)
        row["edgeprune_ms"], row["edgeprune_spread_ms"] = ours
        if tp is not None:

            def tp_build(m=model, x=x):
                return tp.DependencyGraph().build_dependency(m, example_inputs=x)

            try:
                row["torch_pruning_ms"], row["torch_pruning_spread_ms"] = median_ms(tp_build, args.repeats)
                row["speedup"] = round(row["torch_pruning_ms"] / row["edgeprune_ms"], 2)
            except Exception as exc:
                row["torch_pruning_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
        rows.append({k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()})
        print(rows[-1], flush=True)
    meta = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "torch_pruning": _dist_version("torch-pruning") if tp is not None else None,
        "repeats": args.repeats,
        "statistic": "median ms after one warm-up; spread = max - min",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
