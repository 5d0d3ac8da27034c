"""Cut residual streams or keep them whole? Plans at one predicted latency, measured and briefly fine-tuned.

A residual stream (a group several layers write to, joined by additions) feeds every layer of its stage,
so cutting it saves the most predicted milliseconds per channel. This benchmark plans one model under
the same latency budget with different caps on streams (``--max-removed-shared``), then for each plan
reports the measured speedup (pruned and dense timed in interleaved rounds), the MACs, and the JPEG
test accuracy after a short fine-tune, all from the same training run:

    python tools/bench_streams.py bench/accuracy/runs/oicsr/train --out bench/streams.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import torch
from bench_accuracy import Timer, ft_config  # tools/ is on the path when this script runs

from edgeprune.atomic import atomic_write_text
from edgeprune.models import create_model
from edgeprune.plan.planner import Budget, PlanConstraints
from edgeprune.plan.run import PruneSettings, prune_run
from edgeprune.prune import load_model_ref
from edgeprune.targets import load_target
from edgeprune.train.data import ArrayLoader, load_dataset
from edgeprune.train.run import train_run
from edgeprune.train.trainer import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a training run (train/ folder) of a CIFAR model, with its importance.json")
    ap.add_argument("--target", default="cpu-ort")
    ap.add_argument("--latency", default="0.6x", help="the one predicted latency budget every plan meets")
    ap.add_argument("--caps", default="0.75,0.5,0", help="--max-removed-shared values to compare")
    ap.add_argument("--ft-steps", type=int, default=150, help="fine-tuning steps per plan (batch 128)")
    ap.add_argument("--rounds", type=int, default=5, help="timing per plan, in multiples of the target's rounds")
    ap.add_argument("--out", default="bench/streams.json")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    target = load_target(args.target)
    _, name, _, _ = load_model_ref(args.run)
    timer = Timer(target, create_model(name, pretrained=True).eval(), args.rounds)
    _, test = load_dataset("cifar10")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cap in (float(c) for c in args.caps.split(",")):
            folder, ft = Path(tmp) / f"prune-{cap}", Path(tmp) / f"ft-{cap}"
            settings = PruneSettings(Budget.parse("latency", args.latency),
                                     constraints=PlanConstraints(max_removed_shared=cap))  # fmt: skip
            result = prune_run(args.run, target.name, settings, folder)
            speedup = timer.speedup(load_model_ref(str(folder))[0].eval())
            train_run(str(folder), ft, "cifar10", "none", {}, ft_config(args.ft_steps), False, False, None, False)
            tuned = load_model_ref(str(ft))[0].eval()
            acc = evaluate(tuned, ArrayLoader(test, 500, False), torch.device("cpu"))
            cut = [f"{w.size}->{w.kept}" for w in result.widths if w.kept < w.size]
            ratio = {k: result.pruned[k] / result.dense[k] for k in ("latency", "macs")}
            rows.append({"max_removed_shared": cap, "predicted_ratio": ratio["latency"], "macs_ratio": ratio["macs"],
                         "measured_speedup": speedup, "jpeg_test": acc, "groups_cut": cut})  # fmt: skip
            print(f"cap {cap:g}: predicted {rows[-1]['predicted_ratio']:.3f}x, measured {speedup:.2f}x faster, "
                  f"MACs {rows[-1]['macs_ratio']:.3f}x, JPEG test {acc:.2%}", flush=True)  # fmt: skip
    summary = {"run": args.run, "target": args.target, "latency_budget": args.latency, "ft_steps": args.ft_steps,
               "note": "one seed; figures from the same training run and the same timing process", "rows": rows}
    atomic_write_text(Path(args.out), json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
