"""Models on targets timed against each other, in one interleaved run per batch size (with the first target's
warm-up, repeats and rounds): each one's median ms and its speedup over the first model on the first target,
with a 95 % interval. Writes JSON. Targets that differ in a process-wide setting (torch's CPU threads) do not
mix in one run; CUDA graphs against eager do.

    python tools/bench_latency.py OUT.json --target cuda-torch-fp16 --target T.toml --batch 1 --batch 32 \\
        --input-size 640 --model ultralytics:yolov8n.yaml --model runs/p-0.7x/model
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgeprune.atomic import atomic_write_text
from edgeprune.backends import time_runners, unavailable_reason
from edgeprune.latency.profiler import prepare_model
from edgeprune.prune import load_model_ref
from edgeprune.targets import load_target
from edgeprune.validation import count_macs


def bench_batch(targets: list, models: dict, side: int, batch: int, tmp: Path) -> dict:
    runners, shape = {}, None
    for target in targets:
        target = replace(target, batch=batch)
        shape = target.input_shape((3, side, side))
        for i, (ref, m) in enumerate(models.items()):
            path = tmp / f"{target.name}-{i}.onnx"
            runners[f"{target.name} | {ref}"] = prepare_model(target, m, shape, path)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    first = replace(targets[0], batch=batch)
    timed = time_runners(runners, x, first, reference=next(iter(runners)))
    rows = {}
    for key, stats in timed.stats.items():
        row = {"median_ms": stats.median_ms, "spread_pct": stats.spread_pct}
        if key in timed.ratios:
            row["speedup"] = timed.speedup(key).to_dict()
        rows[key] = row
    return {"batch": batch, "input": list(shape), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--target", action="append", required=True, help="name or .toml; repeatable")
    ap.add_argument("--model", action="append", required=True, help="reference or folder; the first is the base")
    ap.add_argument("--batch", action="append", type=int, help="repeatable; default: the target's")
    ap.add_argument("--input-size", type=int, default=640)
    args = ap.parse_args()
    models = {ref: load_model_ref(ref)[0].eval() for ref in args.model}
    side = args.input_size
    macs = {ref: count_macs(m, torch.zeros(1, 3, side, side))[0] for ref, m in models.items()}
    result = {"input_size": side, "macs": macs, "runs": []}
    targets = [load_target(name) for name in args.target]
    for target in targets:
        if (why := unavailable_reason(target)) is not None:
            sys.exit(f"target {target.name} cannot run here: {why}")
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batch or [targets[0].batch]:
            run = bench_batch(targets, models, side, batch, Path(tmp))
            result["runs"].append(run)
            for key, row in run["rows"].items():
                s = row.get("speedup")
                rel = f"  {s['median']:.2f}x ({s['low']:.2f}-{s['high']:.2f})" if s else ""
                print(f"bs{batch} {key}: {row['median_ms']:.3f} ms{rel}", flush=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
