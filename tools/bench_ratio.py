"""Is a measured speedup a property of the two models, or of the moment it was measured?

The predictor check compares predicted with measured speedups, so it can be no closer than the measured
speedup repeats. This times, in ``--trials`` trials a few seconds apart, four fresh sessions in
alternating rounds: the dense model twice and one seeded random pruned variant twice. Per trial it
records three ratios of medians: dense÷dense and variant÷variant (same model, two sessions: what the
session and the rounds contribute) and dense÷variant (the speedup). If the speedup moves between trials
much more than the same-model ratios do, the machine's state changes how the two models compare.

    python tools/bench_ratio.py --model cifar_resnet56 --repeats 30 --rounds 5  # bench/ratio/cifar_resnet56-30x5.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeprune.atomic import atomic_write_text
from edgeprune.backends import measure_interleaved, prepare_runner
from edgeprune.latency.check import check_variants
from edgeprune.latency.profiler import export_for, model_input_shape
from edgeprune.targets import load_target

RATIOS = {"dense/dense": ("dense", "dense2"), "variant/variant": ("variant", "variant2"),
          "dense/variant (speedup)": ("dense", "variant")}  # fmt: skip


def spread(values: list[float]) -> dict:
    """Range and median absolute deviation from the median, in % of the median."""
    mid = statistics.median(values)
    return {"median": mid, "range_pct": 100 * (max(values) - min(values)) / mid,
            "mad_pct": 100 * statistics.median(abs(v / mid - 1) for v in values)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cifar_resnet56")
    ap.add_argument("--target", default="cpu-ort")
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--repeats", type=int, help="timed runs per round (default: the target's)")
    ap.add_argument("--rounds", type=int, help="rounds (default: the target's)")
    ap.add_argument("--seed", type=int, default=1, help="which random variant")
    ap.add_argument("--pause", type=float, default=5.0, help="seconds between trials")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    target = load_target(args.target)
    args.repeats, args.rounds = args.repeats or target.repeats, args.rounds or target.rounds
    target = dataclasses.replace(target, repeats=args.repeats, rounds=args.rounds)
    models, _ = check_variants(args.model, target, 1, seed=args.seed)
    shape = model_input_shape(args.model, target)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    trials = []
    with tempfile.TemporaryDirectory() as tmp:
        files = [export_for(target, m, shape, Path(tmp) / f"m{i}.onnx") for i, m in enumerate(models)]
        sources = {"dense": files[0], "dense2": files[0], "variant": files[1], "variant2": files[1]}
        for t in range(args.trials):
            if t:
                time.sleep(args.pause)
            runners = {k: prepare_runner(target, f, shape) for k, f in sources.items()}
            stats = measure_interleaved(runners, x, target)
            trials.append({k: s.median_ms for k, s in stats.items()})
    summary = {name: spread([tr[a] / tr[b] for tr in trials]) for name, (a, b) in RATIOS.items()}
    meta = {"model": args.model, "target": args.target, "trials": args.trials, "repeats": args.repeats,
            "rounds": args.rounds, "seed": args.seed, "pause_s": args.pause, "when": time.ctime()}  # fmt: skip
    out = Path(args.out or f"bench/ratio/{args.model}-{args.repeats}x{args.rounds}.json")
    atomic_write_text(out, json.dumps({"meta": meta, "summary": summary, "trials_ms": trials}, indent=1))
    for name, s in summary.items():
        print(f"{name:>24}: median {s['median']:.3f}, range {s['range_pct']:.1f} %, MAD {s['mad_pct']:.1f} %")


if __name__ == "__main__":
    main()
