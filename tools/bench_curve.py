"""Accuracy against measured speed: one sparsity-trained model pruned at several latency budgets.

The accuracy benchmark prunes every method to one measured speed by bisection, but on a machine whose
speed drifts by 20 % the methods land at different speeds, and a point of accuracy is worth little when
the speeds differ. This benchmark traces a curve instead: the same training run pruned at each
``--budgets`` (predicted latency fractions), each fine-tuned as the accuracy benchmark does, then every
curve point, every model of an accuracy-benchmark folder (``--compare``) and the dense model timed
together in interleaved rounds. The curve's accuracy is then read at each compared model's measured speed
(linear between neighbouring points; never extrapolated). ``--on-curve M`` adds a compared model pruned
from the same training run as one more curve point (the accuracy benchmark's own, at its bisected budget).
``--kind macs`` plans by MACs instead (budgets are MACs fractions; the FLOPs-driven planner with the same
importance), and ``--also DIR`` times another curve's points in the same timing.

    python tools/bench_curve.py bench/accuracy-1.5x-inner-old-profile/runs/oicsr/train \
        --budgets 0.68,0.74,0.8 --compare bench/accuracy-1.5x-inner --on-curve oicsr --out bench/curve-oicsr
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch
from bench_accuracy import SHAPE, Timer, accuracy, ft_config  # tools/ is on the path when this script runs

from edgeprune.atomic import atomic_write_text
from edgeprune.backends import prepare_runner
from edgeprune.export import export_onnx
from edgeprune.latency.profile import find_profile
from edgeprune.models import create_model
from edgeprune.plan.planner import Budget, PlanConstraints
from edgeprune.plan.run import PruneSettings, prune_run
from edgeprune.prune import load_model_ref
from edgeprune.targets import load_target
from edgeprune.train.run import train_run
from edgeprune.validation import count_macs


def curve_point(run: str, budget: float, target, steps: int, out: Path, profile: str | None = None,
                kind: str = "latency", step: float = PlanConstraints.step, seed: int = 0,
                branches: bool = False) -> dict:  # fmt: skip
    """Prune ``run`` to ``budget`` of the dense model's predicted latency (or MACs, ranked by MACs: the
    FLOPs-driven planner), fine-tune, export; resumable per budget."""
    record = out / "point.json"
    if record.is_file():
        point = json.loads(record.read_text())
        if point.get("seed", 0) != seed:
            raise SystemExit(f"{record} was fine-tuned with seed {point.get('seed', 0)}, not {seed}: use another --out")
        if point.get("remove_branches", False) != branches:
            raise SystemExit(f"{record} was planned with remove_branches={not branches}: use another --out")
        return point
    pruned, ft = out / "pruned", out / "finetune"
    # MACs ranking: widths by --step, off the target's blocking (align 1), as the committed MACs-ranked curve was
    # planned before MACs-ranked plans kept to the blocking
    constraints = PlanConstraints(step=step, remove_branches=branches)
    settings = PruneSettings(Budget.parse(kind, f"{budget}x"), ranked_by=kind, constraints=constraints,
                             align=1 if kind == "macs" else None)  # fmt: skip
    result = prune_run(run, target.name, settings, pruned, profile)
    train_run(str(pruned), ft, "cifar10", "none", {}, ft_config(steps, seed), False, False, None, False)
    model = load_model_ref(str(ft))[0].eval()
    export_onnx(model, torch.randn(*SHAPE), out / "model.onnx")
    predicted = result.pruned["latency"] / result.dense["latency"] if "latency" in result.pruned else None
    point = {"budget": budget, "kind": kind, "predicted_ratio": predicted, "seed": seed, "remove_branches": branches,
             "branches_removed": sum(w.kept == 0 for w in result.widths),
             "macs": count_macs(model, torch.randn(*SHAPE))[0], "accuracy": accuracy(model)}  # fmt: skip
    atomic_write_text(record, json.dumps(point, indent=1))
    return point


def read_at(curve: list[tuple[float, float]], speed: float) -> float | None:
    """The curve's accuracy at ``speed`` by linear interpolation between neighbours; None outside it."""
    curve = sorted(curve)
    for (s0, a0), (s1, a1) in zip(curve, curve[1:]):
        if s0 <= speed <= s1:
            return a0 + (a1 - a0) * (speed - s0) / (s1 - s0) if s1 > s0 else (a0 + a1) / 2
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a sparsity-training run (train/ folder) of cifar_resnet56")
    ap.add_argument("--budgets", default="0.68,0.74,0.8", help="predicted latency fractions, one point each")
    ap.add_argument("--kind", choices=["latency", "macs"], default="latency",
                    help="macs: budgets are MACs fractions and plans are ranked by MACs (the FLOPs-driven planner)")
    ap.add_argument("--step", type=float, default=PlanConstraints.step,
                    help="fraction of a group removed per greedy step (with --kind macs: the widths, unsnapped)")
    ap.add_argument("--compare", help="an accuracy-benchmark folder whose models are timed alongside")
    ap.add_argument("--also", action="append", default=[],
                    help="another curve folder whose points are timed alongside (and read on this curve)")
    ap.add_argument("--on-curve", action="append", default=[],
                    help="a compared method pruned from this same training run: also a curve point")
    ap.add_argument("--target", default="cpu-ort")
    ap.add_argument("--profile", help="latency profile to plan with (default: the committed one)")
    ap.add_argument("--ft-steps", type=int, default=600, help="fine-tuning steps per point (batch 128)")
    ap.add_argument("--rounds", type=int, default=7, help="final timing, in multiples of the target's rounds")
    ap.add_argument("--seed", type=int, default=0, help="fine-tuning seed (batch order, augmentation)")
    ap.add_argument("--remove-branches", action="store_true", help="plans may remove whole residual branches")
    ap.add_argument("--out", default="bench/curve")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(args.seed)
    target, out = load_target(args.target), Path(args.out)
    points = {f"budget {b:g}": curve_point(args.run, b, target, args.ft_steps, out / "runs" / f"budget-{b:g}",
                                           args.profile, args.kind, args.step, args.seed, args.remove_branches)
              for b in (float(x) for x in args.budgets.split(","))}  # fmt: skip
    onnx = {label: out / "runs" / f"budget-{p['budget']:g}" / "model.onnx" for label, p in points.items()}
    compared = {}
    if args.compare:
        for record in sorted(Path(args.compare).glob("*.json")):
            if record.name != "accuracy.json":
                rec = json.loads(record.read_text())
                compared[rec["method"]] = rec
                onnx[rec["method"]] = Path(args.compare) / "runs" / rec["method"] / "model.onnx"
    for other in args.also:  # e.g. the latency-ranked curve beside a MACs-ranked one, in one timing
        for record in sorted(Path(other).glob("runs/budget-*/point.json")):
            rec = json.loads(record.read_text())
            label = f"{Path(other).name} budget {rec['budget']:g}"
            compared[label] = rec
            onnx[label] = record.parent / "model.onnx"
    timer = Timer(target, create_model("cifar_resnet56", pretrained=True).eval(), args.rounds)
    runners = {"dense": timer.dense, **{k: prepare_runner(target, p, SHAPE) for k, p in onnx.items()}}
    ms = timer.times(runners)
    speed = {k: ms["dense"] / ms[k] for k in onnx}
    curve = [(speed[k], p["accuracy"]["jpeg_test"]) for k, p in points.items()]
    curve += [(speed[k], compared[k]["accuracy"]["jpeg_test"]) for k in args.on_curve]
    rows = [{"model": k, **p, "measured_speedup": speed[k]} for k, p in points.items()]
    rows += [{"model": k, "accuracy": r["accuracy"], "macs": r["macs"], "measured_speedup": speed[k],
              "curve_jpeg_test_at_this_speed": read_at(curve, speed[k])} for k, r in compared.items()]  # fmt: skip
    profile = args.profile or str(find_profile(target.name, target.backend))
    summary = {"run": args.run, "target": args.target, "profile": profile, "kind": args.kind,
               "ft_steps": args.ft_steps, "rounds": args.rounds, "dense_ms": ms["dense"], "rows": rows}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "curve.json", json.dumps(summary, indent=1))
    for r in rows:
        at = r.get("curve_jpeg_test_at_this_speed")
        extra = f"; the curve at this speed: {at:.2%}" if at is not None else ""
        print(f"{r['model']}: {r['measured_speedup']:.2f}x measured, JPEG test {r['accuracy']['jpeg_test']:.2%}{extra}")


if __name__ == "__main__":
    main()
