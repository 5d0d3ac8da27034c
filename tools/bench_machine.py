"""How steady is this machine's speed? A fixed numpy matrix product, timed over a minute.

Every latency figure in this project is a ratio of two timings, and a predictor can be checked only as
closely as the machine repeats itself. This times the same work (four 256×256 float32 products) in
``--samples`` samples, each the median of 60 runs, ``--pause`` seconds apart, and writes the samples and
their spread:

    python tools/bench_machine.py --out bench/machine.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from edgeprune.atomic import atomic_write_text


def sample(a: np.ndarray, runs: int = 60) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(4):
            a @ a
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--pause", type=float, default=0.5, help="seconds between samples")
    ap.add_argument("--out", default="bench/machine.json")
    args = ap.parse_args()
    a = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    sample(a)  # warm-up
    ms = []
    for _ in range(args.samples):
        ms.append(sample(a))
        time.sleep(args.pause)
    mid = statistics.median(ms)
    summary = {"min_ms": min(ms), "median_ms": mid, "max_ms": max(ms), "max_over_min": max(ms) / min(ms),
               "samples_off_median_by_more_than_15pct": sum(abs(m / mid - 1) > 0.15 for m in ms)}  # fmt: skip
    meta = {"work": "4 x (256x256 @ 256x256) float32, numpy", "samples": args.samples, "pause_s": args.pause,
            "runs_per_sample": 60, "machine": platform.machine(), "when": time.ctime()}  # fmt: skip
    atomic_write_text(Path(args.out), json.dumps({"meta": meta, "summary": summary, "samples_ms": ms}, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
