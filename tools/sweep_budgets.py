"""Plan every listed model under one budget with default settings, as a user would: does the planner reach it?

Each model runs `edgeprune prune MODEL --target T --<kind> B --out ...` in its own process (the CLI's own
checks, the oracle included), so one failure cannot break the next. No timing: a MACs or params budget
plans from the graph alone. Writes OUT.json and OUT.md.

    python tools/sweep_budgets.py --macs 0.5x --out bench/sweep-macs-0.5x efficientnet_b0 timm:repvgg_a0
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MACS_LINE = re.compile(r"- macs: (\S+) → (\S+) \((\S+)x\)")
LOCK = "/tmp/heavy.lock"  # shared with the repository's timing jobs when it exists (flock)


def plan_one(model: str, target: str, kind: str, budget: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "edgeprune.cli", "prune", model, "--target", target, f"--{kind}", budget,
               "--out", str(Path(tmp) / "out"), *extra]  # fmt: skip
        if Path(LOCK).exists():
            cmd = ["flock", LOCK, *cmd]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        row = {"model": model, "rc": done.returncode, "seconds": round(time.perf_counter() - start, 1)}
    found = MACS_LINE.search(done.stdout)
    if found:
        row["macs_before"], row["macs_after"], row["macs_ratio"] = found.group(1), found.group(2), float(found.group(3))
    if done.returncode:
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error")]
        row["error"] = errors[-1] if errors else (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return row


def to_markdown(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [f"# `edgeprune prune M --target {args.target} --{args.kind} {args.budget}`, default settings", "",
             "| model | planned | MACs (M) | ratio | error |", "|---|---|---|---:|---|"]  # fmt: skip
    for r in rows:
        macs = f"{r['macs_before']} → {r['macs_after']}" if "macs_after" in r else ""
        lines.append(f"| {r['model']} | {'yes' if r['rc'] == 0 else 'no'} | {macs} | {r.get('macs_ratio', '')} "
                     f"| {r.get('error', '')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--target", default="cpu-ort")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--macs")
    group.add_argument("--params")
    ap.add_argument("--out", required=True, help="OUT.json and OUT.md are written")
    ap.add_argument("--extra", default="", help="more prune options, one string")
    args = ap.parse_args()
    args.kind, args.budget = ("macs", args.macs) if args.macs else ("params", args.params)
    rows = []
    for model in args.models:
        rows.append(plan_one(model, args.target, args.kind, args.budget, shlex.split(args.extra)))
        print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps({"target": args.target, args.kind: args.budget, "rows": rows},
                                                   indent=1))  # fmt: skip
    Path(f"{args.out}.md").write_text(to_markdown(rows, args))
    planned = sum(r["rc"] == 0 for r in rows)
    print(f"{planned} of {len(rows)} planned; wrote {args.out}.json and {args.out}.md")


if __name__ == "__main__":
    main()
