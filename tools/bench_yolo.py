"""YOLO benchmark for docs/benchmarks/yolo.md: latency-budget plans against a uniform magnitude ratio at the
same measured latency, each fine-tuned the same epochs, mAP on the dataset's val images.

Every step is an `edgeprune` command (listed in the result with its wall time) and is skipped when its
output exists, so a re-run resumes. Run folders go under --runs; the small JSON results under --out.

    python tools/bench_yolo.py --model ultralytics:yolov8n.yaml --budgets 0.8,0.6 --data runs/yolo/coco256.yaml \
        --profile bench/yolo/cpu-ort-yolov8n.json --epochs 5 --train-size 320 --out bench/yolo --runs runs/yolo
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

EP = [sys.executable, "-P", "-m", "edgeprune.cli"]  # -P: the installed edgeprune (or PYTHONPATH's), not the cwd's
LOG: list[dict] = []  # every command run by this invocation, with its wall time
LOG_FILE: list[Path] = []  # where LOG is appended to, so that resumed runs add up


def edgeprune(args: list[str], result: Path | None = None) -> dict:
    """Run one CLI command (``--json`` ones print their result: kept in ``result``); reuse ``result`` if there."""
    if result is not None and result.exists():
        return json.loads(result.read_text())
    start = time.monotonic()
    proc = subprocess.run(EP + args, capture_output=True, text=True)
    LOG.append({"command": "edgeprune " + shlex.join(args), "seconds": round(time.monotonic() - start, 1),
                "rc": proc.returncode})  # fmt: skip
    print(f"[{LOG[-1]['seconds']:7.1f} s rc {proc.returncode}] {LOG[-1]['command']}", flush=True)
    for f in LOG_FILE:
        with f.open("a") as log:
            log.write(json.dumps(LOG[-1]) + "\n")
    if proc.returncode not in (0, 4):  # 4: validate's speedup gate, a result like any other here
        sys.exit(f"failed: {proc.stderr[-3000:]}")
    out = json.loads(proc.stdout[proc.stdout.index("{") :]) if "--json" in args else {}
    if result is not None:
        result.write_text(json.dumps(out, indent=1) + "\n")
    return out


def validate(model: list[str], pruned: Path, a: argparse.Namespace, name: str) -> dict:
    """Dense and ``pruned`` timed interleaved on the target: the measured speedup with its interval."""
    out = a.out / f"validate-{name}.json"
    return edgeprune(["validate", *model, str(pruned), "--target", a.target, "--profile", str(a.profile),
                      "--out", str(a.runs / f"validate-{name}"), "--json"], out)  # fmt: skip


def prune(model: list[str], how: list[str], a: argparse.Namespace, name: str) -> Path:
    folder = a.runs / name
    if not (folder / "model").exists():
        edgeprune(["prune", *model, *how, "--out", str(folder), "--json"], a.out / f"prune-{name}.json")
    return folder / "model"


def uniform_plan_file(model_ref: str, ratio: float, side: int, path: Path, round_to: int = 8) -> Path:
    """A uniform plan as Torch-Pruning makes one with ``round_to`` (see :func:`uniform_keep`), of the pretrained
    ``model_ref`` at ``side``, saved to ``path`` (kept when it exists).
    `prune --ratio` keeps exact fractions instead, widths off the runtime's channel blocking."""
    import torch

    from edgeprune.graph import build_graph
    from edgeprune.models import create_model
    from edgeprune.prune import Plan

    if path.exists():
        return path
    model = create_model(model_ref, pretrained=True).eval()
    graph = build_graph(model, torch.randn(1, 3, side, side), model_name=model_ref)
    Plan(graph.model_name, graph.fingerprint, uniform_keep(model, graph, ratio, round_to)).save(path)
    return path


def uniform_keep(model, graph, ratio: float, round_to: int = 8) -> dict[int, list[int]]:
    """Every prunable group keeps the multiple of ``round_to`` nearest ``(1 - ratio)`` of its channels (at least
    ``round_to``), its highest-magnitude ones: the channels kept per changed group."""
    from edgeprune.prune.importance import magnitude_scores

    keep = {}
    for g in graph.prunable_groups:
        frozen = [i for i in range(g.size) if g.units[i].frozen]
        n = min(g.size, max(round_to, round_to * round((1 - ratio) * g.size / round_to)))
        scores = magnitude_scores(model, g)
        best = sorted(g.prunable_units, key=lambda i: (-float(scores[i]), i))[: max(0, n - len(frozen))]
        if len(frozen) + len(best) < g.size:
            keep[g.id] = sorted(frozen + best)
    return keep


def matched_ratio(model: list[str], goal: float, a: argparse.Namespace, tag: str) -> tuple[str, list[dict]]:
    """The uniform magnitude ratio (widths rounded to 8) whose measured speedup is within ``a.match`` of
    ``goal``: a secant on log speedup against the ratio, started where MACs alone would put it. Returns its
    name and every try."""
    tries: list[dict] = []
    ratio = 1 - 1 / math.sqrt(goal)  # MACs fall with the square of a uniform width cut
    for _ in range(a.tries):
        ratio = round(min(max(ratio, 0.01), 0.9), 3)
        name = f"uniform8-{ratio}"
        plan = uniform_plan_file(model[0], ratio, a.eval_size, a.runs / f"{name}.plan.json")
        pruned = prune(model, ["--plan", str(plan)], a, name)
        speedup = validate(model, pruned, a, name)["derived"]["measured_speedup"]
        tries.append({"for": tag, "ratio": ratio, "name": name, "measured_speedup": speedup})
        if abs(speedup / goal - 1) <= a.match:
            return name, tries
        below = [t for t in tries if t["measured_speedup"] < goal] or [{"ratio": 0.0, "measured_speedup": 1.0}]
        above = [t for t in tries if t["measured_speedup"] > goal]
        lo = max(below, key=lambda t: t["measured_speedup"])
        hi = min(above, key=lambda t: t["measured_speedup"]) if above else None
        if hi is None:  # extrapolate from the origin through the best try so far
            ratio = lo["ratio"] * math.log(goal) / math.log(lo["measured_speedup"]) if lo["ratio"] else ratio * 1.5
        else:
            s_lo, s_hi = math.log(lo["measured_speedup"]), math.log(hi["measured_speedup"])
            ratio = lo["ratio"] + (hi["ratio"] - lo["ratio"]) * (math.log(goal) - s_lo) / (s_hi - s_lo)
            if any(abs(ratio - t["ratio"]) < 0.01 for t in tries):
                # widths rounded to 8 make nearby ratios one plan, and timing noise then repeats a try: bisect
                ratio = (lo["ratio"] + hi["ratio"]) / 2
    best = min(tries, key=lambda t: abs(t["measured_speedup"] / goal - 1))
    return best["name"], tries


def finetune_and_eval(model: list[str], name: str, a: argparse.Namespace, extra: list[str] = ()) -> dict:
    """Fine-tune ``a.epochs`` at ``a.train_size``, then mAP at ``a.eval_size`` on the val images."""
    run = a.runs / f"ft-{name}"
    if not (run / "model").exists():
        edgeprune(["train", *model, "--data", str(a.data), "--reg", "none", "--epochs", str(a.epochs),
                   "--input-size", str(a.train_size), "--batch-size", "16", *extra, "--out", str(run)])  # fmt: skip
    return edgeprune(["eval", str(run / "model"), "--data", str(a.data), "--input-size", str(a.eval_size), "--json"],
                     a.out / f"eval-ft-{name}.json")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="an ultralytics:<yaml> with --pretrained weights in the data folder")
    ap.add_argument("--budgets", default="0.8,0.6", help="latency budgets, fractions of the dense model's")
    ap.add_argument("--data", type=Path, required=True, help="dataset yaml")
    ap.add_argument("--profile", type=Path, required=True, help="the target's profile holding the model's layers")
    ap.add_argument("--target", default="cpu-ort")
    ap.add_argument("--measured-rounds", default="3")
    ap.add_argument("--match", type=float, default=0.03, help="relative tolerance of the equal-speed match")
    ap.add_argument("--tries", type=int, default=7, help="most uniform ratios timed per budget")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--train-size", type=int, default=320)
    ap.add_argument("--eval-size", type=int, default=640)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--runs", type=Path, required=True)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    a.runs.mkdir(parents=True, exist_ok=True)
    LOG_FILE.append(a.out / "commands.jsonl")
    model = [a.model, "--pretrained"]
    rows = {"dense": {"eval": edgeprune(["eval", *model, "--data", str(a.data), "--input-size", str(a.eval_size),
                                         "--json"], a.out / "eval-dense.json")}}  # fmt: skip
    pruned = {}
    for b in a.budgets.split(","):
        name = f"ours-{b}x"
        pruned[name] = prune(model, ["--target", a.target, "--profile", str(a.profile), "--latency", f"{b}x",
                                     "--measured-rounds", a.measured_rounds], a, name)  # fmt: skip
        rows[name] = {"validate": validate(model, pruned[name], a, name)["derived"]}
    tries = []
    for b in a.budgets.split(","):
        goal = rows[f"ours-{b}x"]["validate"]["measured_speedup"]
        name, t = matched_ratio(model, goal, a, f"ours-{b}x")
        tries += t
        pruned[name] = a.runs / name / "model"
        rows[name] = {"validate": json.loads((a.out / f"validate-{name}.json").read_text())["derived"],
                      "matches": f"ours-{b}x"}  # fmt: skip
    # every model is fine-tuned the same way: the dense one from its checkpoint, the pruned ones from their folders
    rows["dense"]["finetuned"] = finetune_and_eval(model, "dense", a)
    for name, folder in pruned.items():
        rows[name]["finetuned"] = finetune_and_eval([str(folder)], name, a)
    summary = {"model": a.model, "target": a.target, "profile": str(a.profile), "epochs": a.epochs,
               "train_size": a.train_size, "eval_size": a.eval_size, "rows": rows, "uniform_tries": tries,
               "commands": [json.loads(x) for x in LOG_FILE[0].read_text().splitlines()]}  # fmt: skip
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for name, r in rows.items():
        v, f = r.get("validate", {}), r["finetuned"]
        print(f"{name:18} speedup {v.get('measured_speedup', 1.0):.3f} MACs {v.get('macs_speedup', 1.0):.3f} "
              f"mAP50-95 {f['mAP50-95']:.4f} mAP50 {f['mAP50']:.4f}")


if __name__ == "__main__":
    main()
