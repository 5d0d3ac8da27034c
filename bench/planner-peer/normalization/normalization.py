"""How the planner weighs one group's channels against another's, tried on one model at half the MACs.

The planner divides a group's importance scores by the group's mean and by the group's width to a power
(``PlanConstraints.width_power``). At 0 (the default) every channel counts about 1, whatever its group's
width, so halving a 1024-wide group costs 32 times what halving a 32-wide one does; at 1 halving any group
costs alike. Each power is planned latency-ranked on the blocking and timed
in one interleaved run beside the speed ceiling and Torch-Pruning's two plans (the bench extra).

    python bench/planner-peer/normalization/normalization.py --model timm:mobilenetv1_100 \
        --profile bench/planner-peer/unbenchmarked/profile-cpu-ort-8.json --out normalization-mobilenetv1

``--pretrained``: plan the model's pretrained weights (cifar_resnet56) instead of seeded random ones;
``--remove-branches``: every plan may also remove whole residual branches; ``--calibration-data DATA``: also the
plan ranked by output change on 64 images of DATA, as ``prune --calibration-data DATA`` ranks (not divided per
group, so no width power applies); ``--powers 0,0.75,1``: the powers to plan with (default 0, 0.5 and 1).

Writes NAME.json and NAME.md beside this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

TOOLS = Path(__file__).resolve().parents[3] / "tools"
sys.path.insert(0, str(TOOLS))
from bench_planner import CALIBRATED, CEILING, measure, paired, variants  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import plan_powers  # noqa: E402

from edgeprune.atomic import atomic_write_text  # noqa: E402
from edgeprune.graph import build_graph  # noqa: E402
from edgeprune.latency import Profile, collect_layers  # noqa: E402
from edgeprune.latency.profiler import model_input_shape  # noqa: E402
from edgeprune.plan.planner import Budget, PlanConstraints  # noqa: E402
from edgeprune.prune import prune_model  # noqa: E402
from edgeprune.targets import load_target  # noqa: E402

HERE = Path(__file__).parent
POWERS = {"width power 0 (default)": 0.0, "width power 0.5": 0.5, "width power 1": 1.0}
KEEP = ["dense", CEILING, "Torch-Pruning uniform", "Torch-Pruning global", CALIBRATED]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="timm:mobilenetv1_100")
    ap.add_argument("--profile", required=True)
    ap.add_argument("--rounds", type=int, default=3, help="timing, times the target's rounds")
    ap.add_argument("--pretrained", action="store_true")
    ap.add_argument("--remove-branches", action="store_true")
    ap.add_argument("--calibration-data", metavar="DATA")
    ap.add_argument("--powers", default="0,0.5,1", help="width powers to plan with, comma-separated")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    target, profile, budget = load_target("cpu-ort"), Profile.load(args.profile), Budget.parse("macs", "0.5x")
    built = variants(args.model, target, profile, budget, PlanConstraints.max_removed_shared, ceiling=True, peer=True,
                     pretrained=args.pretrained, branches=args.remove_branches,
                     calibration=args.calibration_data)  # fmt: skip
    models = {k: built[k] for k in KEEP if k in built}
    model, shape = models["dense"][0], model_input_shape(args.model, target)
    graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=args.model)
    layers = collect_layers(model, shape)
    for label, result in plan_powers(model, graph, layers, budget, profile, target, args.powers, POWERS, shape[-1],
                                     remove_branches=args.remove_branches).items():  # fmt: skip
        models[label] = (prune_model(model, graph, result.plan)[0].eval(), result)
    ms, rounds = measure(args.model, target, models, args.rounds)
    peer = min((k for k in ms if k.startswith("Torch-Pruning")), key=ms.get)
    rows = {}
    for label, (_, result) in models.items():
        if label == "dense":
            continue
        rows[label] = {"measured_speedup": paired(rounds, "dense", label), "vs_peer": paired(rounds, peer, label),
                       "predicted_speedup": result.dense["latency"] / result.pruned["latency"] if result else None,
                       "widths": {str(w.group): [w.kept, w.size] for w in result.widths if w.kept < w.size}
                       if result else None,
                       "branches_removed": sum(w.kept == 0 for w in result.widths) if result else None}  # fmt: skip
    out = HERE / args.out
    atomic_write_text(out.with_suffix(".json"), json.dumps({"model": args.model, "profile": args.profile,
                      "peer": peer, "ms": ms, "plans": rows}, indent=1))  # fmt: skip
    title = f"{args.model} on cpu-ort at half the MACs; speedups over dense and over {peer}, paired per round (95 %)"
    lines = [title, "", "| plan | predicted | measured | ÷ " + peer + " |", "|---|---:|---:|---:|"]
    for label, r in rows.items():
        s, v, p = r["measured_speedup"], r["vs_peer"], r["predicted_speedup"]
        lines.append(f"| {label} | {f'{p:.2f}x' if p else ''} | {s[0]:.2f}x ({s[1]:.2f}–{s[2]:.2f}) | "
                     f"{v[0]:.3f}x ({v[1]:.3f}–{v[2]:.3f}) |")  # fmt: skip
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
