"""Speed and accuracy together, against Torch-Pruning: pretrained CIFAR ResNet-56.

Torch-Pruning's uniform and global plans at half the MACs (tools/peer_plans.py) set the reference points. Beside
them, edgeprune's default plan (``prune --pretrained``: weight energy, no data) at half the MACs and at a few
predicted latency budgets (a MACs budget plans the latency-ranked shape here; ``prune`` keeps that shape unless its
profile prices or times another faster, which tools/bench_planner.py records as ``default_chose``), and the
width-power-1 plan at half the MACs. All are timed in one interleaved run
(speedups paired per round, 95 % intervals), then each is fine-tuned alike (the recipe of
tools/bench_accuracy.py: 600 steps, batch 128, lr 0.01 cosine, one seed) and scored on the 10,000 CIFAR-10 JPEG
test images. Which plans are faster *and* more accurate than the peer's?

    python bench/planner-peer/frontier/frontier.py \
        --profile bench/predictor/planned-calibration/profile-cpu-ort.json --out frontier-r56

``--target T`` times and plans on another target (default ``cpu-ort``; ``--profile`` then defaults to T's
shipped profile). On an int8 target each fine-tuned plan is also quantized as the target deploys it (calibrated
on the target's count of CIFAR-10 train images) and scored in its runtime: the "deployed" column.

``--plan LABEL`` (repeatable) keeps only those plans (Torch-Pruning's global plan, the reference, always
stays); ``--seed N`` fine-tunes with another seed.

Writes NAME.json and NAME.md beside this script. Needs the CIFAR-10 data (``EDGEPRUNE_DATA``) and the bench extra.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[2] / "tools"))
sys.path.insert(0, str(HERE.parent / "normalization"))
from accuracy import accuracy, cifar_images, pretrained_resnet56, score  # noqa: E402
from bench_planner import measure, paired  # noqa: E402
from peer_plans import torch_pruning_plans  # noqa: E402

from edgeprune.atomic import atomic_write_text  # noqa: E402
from edgeprune.backends import prepare_runner, takes_module  # noqa: E402
from edgeprune.export import export_onnx  # noqa: E402
from edgeprune.latency import Profile  # noqa: E402
from edgeprune.latency.profile import find_profile  # noqa: E402
from edgeprune.plan.planner import Budget, PlanConstraints, plan_pruning  # noqa: E402
from edgeprune.prune import prune_model  # noqa: E402
from edgeprune.targets import Target, channel_align, load_target  # noqa: E402
from edgeprune.train.calibration import calibration_images  # noqa: E402
from edgeprune.validation import DeployedModel, count_macs  # noqa: E402

PEER = "Torch-Pruning global"  # the faster of the peer's two plans on this model in every run so far
# label -> (budget kind, budget, width power)
PLANS = {
    "default, 0.5x MACs": ("macs", "0.5x", 0.0),
    "default, 0.75x latency": ("latency", "0.75x", 0.0),
    "default, 0.7x latency": ("latency", "0.7x", 0.0),
    "default, 0.65x latency": ("latency", "0.65x", 0.0),
    # cpu-ort-int8 prices no channels-only ResNet-56 below 0.95x of dense's latency: its plans go by MACs
    "default, 0.45x MACs": ("macs", "0.45x", 0.0),
    "default, 0.4x MACs": ("macs", "0.4x", 0.0),
    "width power 1, 0.5x MACs": ("macs", "0.5x", 1.0),
}


def deployed_top1(model: torch.nn.Module, target: Target, images, x_test: torch.Tensor, y_test: torch.Tensor) -> float:
    """Top-1 of ``model`` as ``target`` deploys it: quantized on ``images`` (from its ONNX export, or from the module
    where the backend builds from one, as validate does) and run in its runtime."""
    shape = (1, 3, 32, 32)
    with tempfile.TemporaryDirectory() as tmp:
        source = model.eval()
        if not takes_module(target):
            source = Path(tmp) / "model.onnx"
            export_onnx(model, torch.randn(*shape), source)
        runner = prepare_runner(target, source, shape, images)
        return accuracy(DeployedModel(runner, 1, model), x_test, y_test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="cpu-ort")
    ap.add_argument("--profile", help="latency profile (default: the target's shipped one)")
    ap.add_argument("--rounds", type=int, default=3, help="timing, times the target's rounds")
    ap.add_argument("--norm-images", type=int, default=2048, help="train images the norms are re-estimated on")
    ap.add_argument("--ft-steps", type=int, default=600)
    ap.add_argument("--plan", action="append", default=[], metavar="LABEL", help="only these plans (repeatable)")
    ap.add_argument("--seed", type=int, default=0, help="the fine-tune's seed")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    unknown = set(args.plan) - set(PLANS) - {"Torch-Pruning uniform", PEER}
    if unknown:
        ap.error(f"unknown plan {sorted(unknown)}; the plans: {['Torch-Pruning uniform', PEER, *PLANS]}")
    warnings.simplefilter("ignore")
    x_test, y_test, x_norm = cifar_images(args.norm_images)
    target = load_target(args.target)
    profile = Profile.load(args.profile or find_profile(target.name, target.backend))
    model, graph, layers = pretrained_resnet56()
    x = torch.randn(1, 3, 32, 32)
    wanted = lambda label: not args.plan or label in args.plan or label == PEER  # noqa: E731
    peer = torch_pruning_plans(model, "cifar_resnet56", tuple(x.shape), 0.5)
    models = {"dense": model, **{k: m for k, m in peer.items() if wanted(k)}}
    predicted = {}
    for label, (kind, text, power) in ((k, v) for k, v in PLANS.items() if wanted(k)):
        c = PlanConstraints(align=channel_align(target), width_power=power)
        result = plan_pruning(model, graph, layers, Budget.parse(kind, text), "latency", profile, constraints=c,
                              side=32)  # fmt: skip
        models[label] = prune_model(model, graph, result.plan)[0].eval()
        predicted[label] = result.dense["latency"] / result.pruned["latency"]
    ms, rounds = measure("cifar_resnet56", target, {k: (m, None) for k, m in models.items()}, args.rounds)
    # an int8 target's calibration images, drawn once: every plan is preprocessed as the dense model is
    images = calibration_images("cifar10", target.calibration_count, model, "cifar_resnet56", 32) \
        if target.precision == "int8" else None  # fmt: skip
    dense_macs = count_macs(model, x)[0]
    rows = {}
    for label, m in models.items():
        if label == "dense":
            continue
        rows[label] = {"macs_ratio": count_macs(m, x)[0] / dense_macs, "predicted_speedup": predicted.get(label),
                       "measured_speedup": paired(rounds, "dense", label), "vs_peer": paired(rounds, PEER, label),
                       **score(m, x_test, y_test, x_norm, args.ft_steps, args.seed)}  # fmt: skip
        if images is not None:
            rows[label]["top1_deployed"] = deployed_top1(m, target, images, x_test, y_test)
    out = HERE / args.out
    atomic_write_text(out.with_suffix(".json"), json.dumps({"target": args.target, "profile": args.profile,
                      "ft_steps": args.ft_steps, "seed": args.seed, "peer": PEER, "ms": ms, "rows": rows},
                      indent=1))  # fmt: skip
    int8 = target.precision == "int8"
    lines = [f"cifar_resnet56 (pretrained) on {args.target}; speedups paired per round (95 %); CIFAR-10 JPEG test "
             f"top-1 % after {args.ft_steps} fine-tuning steps (seed {args.seed})", "",
             f"| plan | MACs | predicted | measured | ÷ {PEER} | top-1 |{' deployed top-1 |' * int8}",
             f"|---|---:|---:|---:|---:|---:|{'---:|' * int8}"]  # fmt: skip
    for label, r in rows.items():
        s, v, p = r["measured_speedup"], r["vs_peer"], r["predicted_speedup"]
        lines.append(f"| {label} | {r['macs_ratio']:.3f}x | {f'{p:.2f}x' if p else ''} | {s[0]:.2f}x "
                     f"({s[1]:.2f}–{s[2]:.2f}) | {v[0]:.3f}x ({v[1]:.3f}–{v[2]:.3f}) | "
                     f"{r['top1_finetuned']:.2f} |" + (f" {r['top1_deployed']:.2f} |" if int8 else ""))  # fmt: skip
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
