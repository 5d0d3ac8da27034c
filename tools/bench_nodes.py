"""Where a pruned plan's time goes inside the runtime: kernel time per operator type, dense against plans.

Builds the plans of tools/bench_planner.py for one model at a MACs budget (with ``--peer``, Torch-Pruning's
too), runs each under onnxruntime's profiler and sums the node kernel times per operator type per run
(layout reorders the runtime inserts are their own rows), with how many nodes of each type ran. Every
model has its own profiled session and they run in alternating rounds, so the machine's drift hits them
alike (profiled one after another, identical Add nodes read 0.09 to 0.15 ms). What the per-layer tables
of a latency profile miss shows up as rows that do not shrink with the MACs. On an ExecuTorch target the
times are XNNPACK's per-operator events from ExecuTorch's ETDump (each round a fresh load of each program,
the rounds alternating likewise; delegate calls and the run outside every event are rows of their own).

    python tools/bench_nodes.py --model cifar_resnet56 --macs 0.5x --peer --pretrained --out bench/nodes-r56
    python tools/bench_nodes.py --model cifar_resnet56 --target cpu-xnnpack --macs 0.5x --peer --pretrained ...

``--random N`` profiles the dense model beside the first N seeded random plans of `edgeprune profile check`
instead (the same plans, widths off the blocking included), to see what the predictor misses on them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_planner import CEILING, variants  # noqa: E402

from edgeprune.atomic import atomic_write_text  # noqa: E402
from edgeprune.backends.onnxruntime import kernel_ms_by_op, profile_sessions  # noqa: E402
from edgeprune.export import export_onnx  # noqa: E402
from edgeprune.latency import Profile  # noqa: E402
from edgeprune.latency.check import check_variants  # noqa: E402
from edgeprune.latency.profile import find_profile  # noqa: E402
from edgeprune.latency.profiler import model_input_shape  # noqa: E402
from edgeprune.plan.budget import Budget, PlanConstraints  # noqa: E402
from edgeprune.targets import load_target  # noqa: E402

WARMUP = 20  # runs per model, the first rounds, left out
ROUND = 10  # runs per model per round


def op_times(events: list[dict]) -> dict[str, tuple[float, float]]:
    """Operator type -> (median kernel ms per run, nodes per run) over the profiled runs after the warmup."""
    runs = kernel_ms_by_op(events)[WARMUP:]
    ops = sorted({op for r in runs for op in r})
    return {op: (statistics.median(sum(r.get(op, [])) for r in runs), sum(len(r.get(op, [])) for r in runs) / len(runs))
            for op in ops}  # fmt: skip


def executorch_op_times(target, modules: dict, shape: tuple, x: np.ndarray, runs: int) -> dict:
    """Label -> operator -> (median ms per run over the rounds after the warmup, operators per run), from
    ExecuTorch's events, each round ``ROUND`` runs of a fresh load of each program in turn."""
    from edgeprune.backends import prepare_runner
    from edgeprune.backends.executorch import profile_ops
    from edgeprune.layer_times import xnnpack_operator

    runners = {label: prepare_runner(target, module, shape) for label, module in modules.items()}
    rounds: dict[str, list[dict[str, list[float]]]] = {label: [] for label in runners}
    for _ in range(-(-(WARMUP + runs) // ROUND)):
        for label, runner in runners.items():
            ops: dict[str, list[float]] = {}
            for name, ms in profile_ops(target, runner.model_path, x, ROUND):
                ops.setdefault(xnnpack_operator(name), []).append(ms)
            rounds[label].append(ops)
    kept = {label: r[WARMUP // ROUND :] for label, r in rounds.items()}
    return {label: {op: (statistics.median(sum(r.get(op, [])) for r in rs), len(rs[-1].get(op, [])))
                    for op in sorted({op for r in rs for op in r})} for label, rs in kept.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar_resnet56")
    parser.add_argument("--target", default="cpu-ort")
    parser.add_argument("--macs", default="0.5x")
    parser.add_argument("--runs", type=int, default=300, help="profiled runs per model after a warmup of 20")
    parser.add_argument("--peer", action="store_true", help="also Torch-Pruning's plans (the bench extra)")
    parser.add_argument("--pretrained", action="store_true")
    parser.add_argument("--profile", help="latency profile (default: this device's, else the shipped one)")
    parser.add_argument("--random", type=int, default=0, metavar="N",
                        help="the dense model and profile check's first N random plans instead of the budget's plans")
    parser.add_argument("--out", default="bench/nodes")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    target = load_target(args.target)
    if target.backend not in ("onnxruntime", "executorch"):
        raise SystemExit(f"{args.target}: the per-node profile needs an onnxruntime or ExecuTorch target")
    budget = Budget.parse("macs", args.macs)
    what = str(budget)
    if args.random:
        built = check_variants(args.model, target, args.random)[0]  # seed 0: the check's own plans
        models = {label: (m,) for label, m in zip(["dense"] + [f"random-{i}" for i in range(args.random)], built)}
        keep, what = list(models), f"dense and {args.random} random plans"
    else:
        profile = Profile.load(args.profile or find_profile(target.name, target.backend))
        models = variants(args.model, target, profile, budget, PlanConstraints.max_removed_shared, ceiling=True,
                          peer=args.peer, pretrained=args.pretrained)  # fmt: skip
        keep = ["dense", "latency-driven", "macs-ranked, on the blocking", "uniform, on the blocking",
                CEILING, "Torch-Pruning uniform", "Torch-Pruning global"]  # fmt: skip
    shape = model_input_shape(args.model, target)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    labels = [k for k in keep if k in models]
    runs = -(-args.runs // ROUND) * ROUND
    if target.backend == "executorch":
        table = executorch_op_times(target, {label: models[label][0] for label in labels}, shape, x, runs)
    else:
        table = onnxruntime_op_times(target, {label: models[label][0] for label in labels}, shape, x, runs)
    write_table(table, args, what)


def onnxruntime_op_times(target, modules: dict, shape: tuple, x: np.ndarray, runs: int) -> dict:
    """Label -> operator -> (median kernel ms per run, nodes per run), each model in its own profiled session."""
    table = {}
    labels = list(modules)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"m{i}.onnx" for i in range(len(labels))]
        for label, path in zip(labels, paths):
            export_onnx(modules[label], torch.randn(*shape), path)
        for label, events in zip(labels, profile_sessions(target, paths, x, WARMUP + runs, ROUND)):
            table[label] = op_times(events)
    return table


def write_table(table: dict, args, what: str) -> None:
    ops = sorted({op for t in table.values() for op in t}, key=lambda o: -table["dense"].get(o, (0, 0))[0])
    lines = [f"{args.model} on {args.target}, {what}: median kernel ms per run (nodes per run)", "",
             "| operator | " + " | ".join(table) + " |", "|---|" + "---:|" * len(table)]  # fmt: skip
    for op in ops:
        cells = [f"{t[op][0]:.3f} ({t[op][1]:.0f})" if op in t else "" for t in table.values()]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    totals = [f"**{sum(v[0] for v in t.values()):.3f}**" for t in table.values()]
    lines.append("| all kernels | " + " | ".join(totals) + " |")
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps({"model": args.model, "target": args.target,
                      "macs": args.macs, "ops": {k: {o: list(v) for o, v in t.items()} for k, t in table.items()}},
                      indent=1))  # fmt: skip
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
