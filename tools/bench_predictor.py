"""Latency predictor error on random pruned variants, measured end to end on the profile's target.

    python tools/bench_predictor.py --profile profiles/cpu-ort--<device>.json --plans 20 \
        --model cifar_resnet56 --model resnet50 --model mobilenet_v2 --out bench/predictor.json

Plans are drawn with --seed (default 0), independent of the profile's calibration plans (seed 12345):
the error is measured on variants the predictor never saw.

``--measured FILE`` takes the end-to-end times from an earlier run of this script (same seed, same plans)
instead of measuring again, so two profiles are compared on the very same measurements.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from edgeprune.graph import build_graph
from edgeprune.latency import Profile, collect_layers
from edgeprune.latency.profiler import build_model, measure_model, model_input_shape, random_plan
from edgeprune.prune import prune_model
from edgeprune.targets import target_from_dict


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--plans", type=int, default=20)
    ap.add_argument("--out", default="bench/predictor.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--measured", help="reuse the measured times of an earlier result file (same seed)")
    args = ap.parse_args()
    earlier = json.loads(Path(args.measured).read_text()) if args.measured else None
    if earlier and earlier["meta"]["seed"] != args.seed:
        ap.error(f"{args.measured} was measured with seed {earlier['meta']['seed']}, not {args.seed}")
    profile = Profile.load(args.profile, strict=True)
    spec = {k: v for k, v in profile.target.items() if k not in ("name", "source")}
    target = target_from_dict(profile.target["name"], spec)
    results = {}
    for name in args.model:
        model, shape = build_model(name, target), model_input_shape(name, target)
        graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=name)
        rng = random.Random(args.seed)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.plans):
                pruned, _ = prune_model(model, graph, random_plan(graph, rng))
                layers = collect_layers(pruned, shape)
                if earlier:
                    measured = earlier["results"][name]["plans"][i]["measured_ms"]
                else:
                    measured = measure_model(target, pruned, shape, Path(tmp))
                predicted = profile.predict(layers, name).ms
                error = 100 * (predicted - measured) / measured
                row = {"measured_ms": measured, "predicted_ms": predicted, "error_pct": error}
                rows.append(row)
                print(f"{name} plan {i + 1}/{args.plans}: {row}", file=sys.stderr, flush=True)
        errs = [abs(r["error_pct"]) for r in rows]
        summary = {"median_abs_pct": statistics.median(errs), "max_abs_pct": max(errs)}
        results[name] = {"summary": summary, "plans": rows}
        print(name, json.dumps(summary), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"profile": args.profile, "device": profile.device, "target": profile.target["name"], "seed": args.seed,
            "lookup": {"channel_block": profile.channel_block, "use_scan": profile.use_scan},
            "misalign": profile.misalign, "measured_in": args.measured or "this run",
            "plans_per_model": args.plans, "plan_sampler": "keep U(0.3, 1.0) of every prunable group, random channels"}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
