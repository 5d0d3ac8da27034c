"""What each width power costs in accuracy: pretrained CIFAR ResNet-56 planned at half the MACs (weight-energy
importance divided by the group's mean and its width to the power, latency-ranked on the blocking, as
``prune --pretrained --width-power P`` plans without data; the table's labels name the powers by their divisor,
mean × width ** P), scored on the 10,000 CIFAR-10 JPEG test images: as shrunk,
with its batch-norm statistics re-estimated on train images, and after ``--ft-steps`` steps of fine-tuning
(the recipe of tools/bench_accuracy.py: batch 128, lr 0.01 cosine, the same seed and batches for every plan).
``--peer`` also scores Torch-Pruning's uniform and global plans at the same MACs (tools/peer_plans.py, the
plans tools/bench_planner.py times), and ``--calibration-data DATA`` the plan of ``prune --pretrained
--calibration-data DATA --rank-by latency`` (scores measured on 64 train images, removed means folded, next
layers refitted), through the same steps.

    python bench/planner-peer/normalization/accuracy.py \
        --profile bench/predictor/planned-calibration/profile-cpu-ort.json --ft-steps 600 --peer --out accuracy-r56

Writes NAME.json and NAME.md beside this script. Needs the CIFAR-10 data (``EDGEPRUNE_DATA``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from edgeprune.atomic import atomic_write_text
from edgeprune.graph import build_graph
from edgeprune.latency import Profile, collect_layers
from edgeprune.models import create_model
from edgeprune.plan.planner import Budget, PlanConstraints, plan_pruning
from edgeprune.plan.run import PruneSettings, prune_run
from edgeprune.prune import prune_model
from edgeprune.prune.serialize import load_pruned
from edgeprune.targets import channel_align, load_target
from edgeprune.train.calibration import calibration_loader
from edgeprune.train.data import load_dataset, normalize
from edgeprune.validation import count_macs

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
from bench_accuracy import fit  # noqa: E402
from peer_plans import torch_pruning_plans  # noqa: E402

HERE = Path(__file__).parent
POWERS = {"mean (default)": 0.0, "sum": 1.0, "sqrt": 0.5}  # label -> width power: the table's labels


def cifar_images(norm_images: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CIFAR-10's JPEG copy, normalized: the test images, their labels, and ``norm_images`` train images drawn
    with seed 0 (the torch seed is set here, before anything else draws)."""
    torch.manual_seed(0)
    train, test = load_dataset("cifar10")
    x_norm = normalize(train.images[torch.randperm(len(train.labels))[:norm_images].numpy()])
    return normalize(test.images), torch.from_numpy(test.labels), x_norm


def pretrained_resnet56() -> tuple[nn.Module, object, list]:
    """The pretrained CIFAR ResNet-56, its graph and its layers at 32²."""
    model = create_model("cifar_resnet56", pretrained=True).eval()
    shape = (1, 3, 32, 32)
    graph = build_graph(model, torch.randn(*shape), model_name="cifar_resnet56")
    return model, graph, collect_layers(model, shape)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    hits = sum((model(xb).argmax(1) == yb).sum().item() for xb, yb in zip(x.split(500), y.split(500)))
    return 100.0 * hits / len(y)


@torch.no_grad()
def reestimate_norms(model: nn.Module, x: torch.Tensor) -> None:
    """Batch-norm running statistics recomputed as plain averages over ``x``, in batches of 128."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    for xb in x.split(128):
        model(xb)
    model.eval()


def plan_powers(model: nn.Module, graph, layers: list, budget: Budget, profile: Profile, target, powers: str,
                names: dict[str, float], side: int, **constraints) -> dict[str, object]:  # fmt: skip
    """The latency-ranked plan on the target's blocking at each width power of ``powers`` ("0,0.5,1"), keyed by
    its label in ``names`` (label -> power), else "width power P"; ``constraints``: further PlanConstraints."""
    label_of = {v: k for k, v in names.items()}
    plans = {}
    for power in (float(p) for p in powers.split(",") if p.strip()):
        c = PlanConstraints(align=channel_align(target), width_power=power, **constraints)
        plans[label_of.get(power, f"width power {power:g}")] = plan_pruning(
            model, graph, layers, budget, "latency", profile, constraints=c, side=side)  # fmt: skip
    return plans


def score(pruned: nn.Module, x_test, y_test, x_norm, ft_steps: int, seed: int = 0) -> dict:
    """Top-1 as shrunk, with the norms re-estimated, and after ``ft_steps`` steps of fine-tuning (None at 0);
    ``seed`` orders the fine-tune's batches and draws its augmentation."""
    shrunk = accuracy(pruned, x_test, y_test)
    reestimate_norms(pruned, x_norm)
    norms = accuracy(pruned, x_test, y_test)
    if ft_steps:
        with tempfile.TemporaryDirectory() as tmp:
            fit(pruned, ft_steps, Path(tmp), seed=seed)
    return {"top1_shrunk": shrunk, "top1_norms_reestimated": norms,
            "top1_finetuned": accuracy(pruned, x_test, y_test) if ft_steps else None}  # fmt: skip


def calibrated_row(args, budget: Budget, x_test, y_test, x_norm) -> dict:
    """The row of the plan ``prune --calibration-data`` makes, latency-ranked, as it saves it."""
    settings = PruneSettings(budget, ranked_by="latency", compare_plans=False)
    with tempfile.TemporaryDirectory() as tmp:
        result = prune_run("cifar_resnet56", "cpu-ort", settings, Path(tmp) / "plan", args.profile, pretrained=True,
                           calibration=calibration_loader(args.calibration_data))  # fmt: skip
        pruned = load_pruned(Path(tmp) / "plan" / "model")
    return {**score(pruned, x_test, y_test, x_norm, args.ft_steps),
            "predicted_speedup": result.dense["latency"] / result.pruned["latency"],
            "macs_ratio": result.pruned["macs"] / result.dense["macs"],
            "widths": {str(w.group): [w.kept, w.size] for w in result.widths if w.kept < w.size}}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--macs", default="0.5x")
    ap.add_argument("--norm-images", type=int, default=2048, help="train images the norms are re-estimated on")
    ap.add_argument("--ft-steps", type=int, default=0, help="fine-tuning steps after the norms (0: none)")
    ap.add_argument("--peer", action="store_true", help="also Torch-Pruning's uniform and global plans (bench extra)")
    ap.add_argument("--powers", default="0,0.5,1", help="width powers to plan with, comma-separated ('' for none)")
    ap.add_argument("--calibration-data", metavar="DATA", help="also the plan prune ranks with these images")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    x_test, y_test, x_norm = cifar_images(args.norm_images)
    target, profile, budget = load_target("cpu-ort"), Profile.load(args.profile), Budget.parse("macs", args.macs)
    model, graph, layers = pretrained_resnet56()
    rows = {"dense": {"top1": accuracy(model, x_test, y_test)}}
    for label, result in plan_powers(model, graph, layers, budget, profile, target, args.powers, POWERS, 32).items():
        rows[label] = {**score(prune_model(model, graph, result.plan)[0], x_test, y_test, x_norm, args.ft_steps),
                       "predicted_speedup": result.dense["latency"] / result.pruned["latency"],
                       "macs_ratio": result.pruned["macs"] / result.dense["macs"],
                       "widths": {str(w.group): [w.kept, w.size] for w in result.widths if w.kept < w.size},
                       }  # fmt: skip
    if args.peer:
        dense_macs = count_macs(model, torch.randn(1, 3, 32, 32))[0]
        for label, pruned in torch_pruning_plans(model, "cifar_resnet56", (1, 3, 32, 32), budget.value).items():
            macs = count_macs(pruned, torch.randn(1, 3, 32, 32))[0]
            rows[label] = {**score(pruned, x_test, y_test, x_norm, args.ft_steps), "macs_ratio": macs / dense_macs,
                           "out_channels": {n: m.out_channels for n, m in pruned.named_modules()
                                            if isinstance(m, nn.Conv2d)}}  # fmt: skip
    if args.calibration_data:
        rows["calibration data"] = calibrated_row(args, budget, x_test, y_test, x_norm)
    out = HERE / args.out
    atomic_write_text(out.with_suffix(".json"), json.dumps({"profile": args.profile, "macs": args.macs,
                      "norm_images": args.norm_images, "ft_steps": args.ft_steps, "rows": rows}, indent=1))  # fmt: skip
    lines = [f"cifar_resnet56 (pretrained) at {args.macs} MACs, CIFAR-10 JPEG test top-1 % "
             f"(dense {rows['dense']['top1']:.2f})", "",
             f"| plan | MACs | predicted speedup | top-1 as shrunk | top-1, norms re-estimated | top-1, "
             f"{args.ft_steps} fine-tuning steps |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for label, r in rows.items():
        if label == "dense":
            continue
        ft = f"{r['top1_finetuned']:.2f}" if args.ft_steps else ""
        predicted = f"{r['predicted_speedup']:.2f}x" if "predicted_speedup" in r else ""
        lines.append(f"| {label} | {r['macs_ratio']:.3f}x | {predicted} | {r['top1_shrunk']:.2f} | "
                     f"{r['top1_norms_reestimated']:.2f} | {ft} |")  # fmt: skip
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
