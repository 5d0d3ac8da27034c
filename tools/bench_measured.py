"""Do plans meet their latency budget when timed? Profile-only plans against plans with measured rounds.

For each model and budget: `edgeprune prune --latency B` on the profile alone, and the same with
`--measured-rounds N` (each plan timed on the target beside the unpruned model, then planned again). Then the
unpruned model and both plans are timed again together in interleaved rounds: a measurement independent of the
one the rounds made, which says whether the budget still holds. Prints a Markdown table and writes JSON.

    python tools/bench_measured.py --target cpu-ort --budgets 0.7,0.8 --out bench/measured.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import torch
from bench_planner import measure  # tools/ is on the path when this script runs

from edgeprune.atomic import atomic_write_text
from edgeprune.latency.profiler import build_model, model_input_shape
from edgeprune.plan.planner import Budget, BudgetError
from edgeprune.plan.run import PruneSettings, prune_run
from edgeprune.prune import load_pruned
from edgeprune.targets import load_target
from edgeprune.validation import count_macs

MODELS = ["cifar_resnet56", "mobilenet_v2", "resnet50"]


def bench_one(name: str, target, budget: float, rounds: int, profile: str | None, retime: int) -> dict:
    b = Budget.parse("latency", f"{budget}x")
    row = {"model": name, "budget": budget}
    with tempfile.TemporaryDirectory() as tmp:
        models = {"dense": (build_model(name, target), None)}
        try:
            plain = prune_run(name, target.name, PruneSettings(b), Path(tmp) / "plain", profile)
            row["profile_only"] = {"predicted": plain.pruned["latency"] / plain.dense["latency"]}
            models["profile_only"] = (load_pruned(Path(tmp) / "plain" / "model"), None)
        except BudgetError as exc:
            row["profile_only"] = {"error": str(exc)}
        started = time.time()
        try:
            result = prune_run(name, target.name, PruneSettings(b, measured_rounds=rounds), Path(tmp) / "measured",
                               profile)  # fmt: skip
            row["measured"] = {**result.measured, "predicted": result.pruned["latency"] / result.dense["latency"]}
            models["measured"] = (load_pruned(Path(tmp) / "measured" / "model"), None)
        except BudgetError as exc:
            row["measured"] = {"error": str(exc)}
        row["measured"]["seconds"] = round(time.time() - started, 1)
        ms = measure(name, target, models, retime)
    row["retimed_ms"] = ms
    x = torch.randn(*model_input_shape(name, target))
    macs = {k: count_macs(m, x)[0] for k, (m, _) in models.items()}
    for label in ("profile_only", "measured"):
        if label in ms:
            row[label]["retimed"] = ms[label] / ms["dense"]
            # realization: measured speedup per MACs speedup (1.0: every MAC removed saves its share of time)
            row[label]["macs_ratio"] = macs[label] / macs["dense"]
            row[label]["realization"] = row[label]["macs_ratio"] / row[label]["retimed"]
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| model | budget | profile only: predicted | re-timed | realization | measured rounds: plans timed | "
             "planned to | measured in rounds | re-timed | realization | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        p, m = r["profile_only"], r["measured"]
        head = f"| {r['model']} | {r['budget']}x | " + ("refused | | |" if "error" in p else
            f"{p['predicted']:.3f}x | {p['retimed']:.3f}x | {p['realization']:.2f} |")  # fmt: skip
        if "error" in m:
            lines.append(f"{head} {m['error'][:90]}… | | | | | {m['seconds']:.0f} |")
        else:
            lines.append(f"{head} {len(m['rounds'])} | {m['planned']:.3f}x | {m['measured']:.3f}x | "
                         f"{m['retimed']:.3f}x | {m['realization']:.2f} | {m['seconds']:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu-ort")
    parser.add_argument("--model", action="append", help="repeatable; default: " + ", ".join(MODELS))
    parser.add_argument("--budgets", default="0.7", help="comma-separated latency fractions")
    parser.add_argument("--rounds", type=int, default=4, help="plans timed at most per budget")
    parser.add_argument("--retime", type=int, default=5, help="independent timing, times the target's rounds")
    parser.add_argument("--profile", help="latency profile (default: the committed one for the target)")
    parser.add_argument("--out", default="bench/measured.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    target = load_target(args.target)
    rows = []
    for name in args.model or MODELS:
        for budget in (float(x) for x in args.budgets.split(",")):
            rows.append(bench_one(name, target, budget, args.rounds, args.profile, args.retime))
            print(markdown(rows[-1:]), flush=True)
    settings = {"budgets": args.budgets, "rounds": args.rounds, "retime": args.retime,
                "profile": args.profile or "committed",
                "weights": "random init (weight-energy importance)"}  # fmt: skip
    atomic_write_text(args.out, json.dumps({"target": args.target, "settings": settings, "rows": rows}, indent=1))
    atomic_write_text(Path(args.out).with_suffix(".md"), markdown(rows) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
