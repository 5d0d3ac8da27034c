"""Latency-driven vs FLOPs-driven plans at the same MACs budget, measured end to end on a target.

For each model, plans with the same importance that meet the same MACs budget, timed with the dense model
in interleaved rounds so machine drift hits them all alike:

- ``latency-driven``: ranked by profiled latency, widths on the target's channel blocking (edgeprune);
- ``flops-driven``: ranked by MACs saved, one channel at a time: what a FLOPs-driven pruner does;
- ``flops-driven, 1/16 steps``: ranked by MACs, widths on sixteenths of each group (the baseline until
  session 10; on groups of 64 or 128 channels those steps happen to fall on the blocking);
- ``macs-ranked, on the blocking``: ranked by MACs, widths on the blocking (edgeprune ``--rank-by macs``):
  what the ranking alone buys once both keep to the blocking.

With ``--remove-branches``, every plan may also remove whole residual branches (groups that are a branch's
entire inside go to width 0), and one more plan, ``latency-driven, channels only``, shows what that adds.

``uniform, on the blocking`` is every group cut by one fraction (edgeprune's uniform plan shape). With
``--peer``, Torch-Pruning's uniform and global plans at the same MACs join the run (tools/peer_plans.py; the JSON
keeps the [cin, cout] of each layer they narrowed, ``layer_widths``),
and the row ``compare_plans_chose`` says which of edgeprune's shapes ``prune --compare-plans`` keeps, chosen
by its own timing before this run's. ``default_chose`` is the shape plain ``prune --macs`` keeps: on the
profile's own device that timed choice, elsewhere the one the profile prices lowest (plan/candidates.py).

With ``--also-profile P`` (repeatable), also the latency-driven plan another profile makes (predicted by that
profile), timed in the same run: which of two profiles plans faster on this machine, today.

With ``--calibration-data DATA``, also the latency-driven plan ``prune --calibration-data DATA`` ranks: each
channel scored by the output change without it on 64 train images, in one unit for every group
(edgeprune.prune.calibrate; the run's ``calibrated_vs_peer`` is that plan over Torch-Pruning's faster one).

With ``--ceiling``, also a plan ranked by milliseconds saved per MAC with importance ignored: about the
fastest plan the constraints allow at the budget, which bounds what "twice as fast from half the MACs" can
reach on the target. Prints a Markdown table and writes JSON; ``latency_vs`` holds each plan's ms over the
latency-driven plan's (the goal's ratio is against ``flops-driven``).

    python tools/bench_planner.py --target cpu-ort --macs 0.5x --ceiling --out bench/planner.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgeprune.atomic import atomic_write_text
from edgeprune.backends import measure_interleaved
from edgeprune.graph import build_graph
from edgeprune.latency import Profile, collect_layers
from edgeprune.latency.costs import make_cost
from edgeprune.latency.layers import on_blocking
from edgeprune.latency.profile import find_profile
from edgeprune.latency.profiler import build_model, model_input_shape, prepare_model
from edgeprune.models import create_model
from edgeprune.plan.candidates import choose_fastest, choose_predicted, weighs_shapes
from edgeprune.plan.planner import Budget, PlanConstraints, Planner, importance_for, plan_pruning
from edgeprune.plan.run import on_its_device
from edgeprune.plan.uniform import plan_uniform
from edgeprune.prune import prune_model
from edgeprune.prune.calibrate import measure_channels
from edgeprune.targets import channel_align, load_target
from edgeprune.timing import summarize_ratios
from edgeprune.train.calibration import calibration_loader
from edgeprune.validation import count_macs

sys.path.insert(0, str(Path(__file__).parent))
from peer_plans import torch_pruning_plans  # noqa: E402

MODELS = ["cifar_resnet56", "mobilenet_v2", "resnet50"]


# label -> (ranking, widths): "blocking" = the target's channel blocking, else the fraction of a group per step
PLANS = {
    "latency-driven": ("latency", "blocking"),
    "flops-driven": ("macs", 0.0),  # a step of under one channel rounds up to one channel
    "flops-driven, 1/16 steps": ("macs", PlanConstraints.step),
    "macs-ranked, on the blocking": ("macs", "blocking"),
    "uniform, on the blocking": ("uniform", "blocking"),
}
SHAPE_OF = {"latency-driven": "latency", "macs-ranked, on the blocking": "macs", "uniform, on the blocking": "uniform"}
SHAPE_OF_LABEL = {v: k for k, v in SHAPE_OF.items()}
CEILING = "speed ceiling: most ms per MAC, importance ignored"
CHANNELS_ONLY = "latency-driven, channels only"
CALIBRATED = "latency-driven, calibration data"


def macs_per_unit(model, graph, layers) -> dict[int, np.ndarray]:
    """Each unit scored by the MACs its removal saves from the dense model. Ranked by latency with these
    scores (not normalized), the planner removes the most milliseconds per MAC first: at a MACs budget,
    about the fastest plan the constraints allow, whatever it costs in accuracy."""
    planner = Planner(graph, layers, {"macs": make_cost("macs", None, graph.model_name)}, importance_for(model, graph))
    return {s.group.id: np.full(s.group.size, planner.saving("macs", s.deltas(s.group.prunable_units[:1])))
            for s in planner.groups}  # fmt: skip


def variants(name: str, target, profile: Profile, budget: Budget, shared: float, ceiling: bool = False,
             branches: bool = False, peer: bool = False, pretrained: bool = False,
             others: dict[str, Profile] | None = None, peer_failed: dict[str, str] | None = None,
             calibration: str | None = None) -> dict:  # fmt: skip
    torch.manual_seed(0)  # the importance is the weight energy of this untrained model: the same in every run
    model = create_model(name, pretrained=True).eval() if pretrained else build_model(name, target)
    shape = model_input_shape(name, target)
    graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=name)
    layers = collect_layers(model, shape)
    out = {"dense": (model, None)}

    def add(label: str, ranked_by: str, c: PlanConstraints, importance=None, prof: Profile = profile) -> None:
        if ranked_by == "uniform":
            result = plan_uniform(model, graph, layers, budget, prof, importance, c, shape[-1])
        else:
            result = plan_pruning(model, graph, layers, budget, ranked_by, prof, importance, c, side=shape[-1])
        out[label] = (prune_model(model, graph, result.plan)[0].eval(), result)

    blocked = PlanConstraints(align=channel_align(target), max_removed_shared=shared, remove_branches=branches)
    for label, (ranked_by, widths) in PLANS.items():
        add(label, ranked_by, blocked if widths == "blocking" else replace(blocked, step=widths, snap=False))
    for label, other in (others or {}).items():
        add(f"latency-driven, {label}", "latency", blocked, prof=other)
    if branches:
        add(CHANNELS_ONLY, "latency", replace(blocked, remove_branches=False))
    if calibration:  # as prune_run ranks with calibration images: measured scores, not divided per group
        images = calibration_loader(calibration)(model, name, shape[-1])  # prune's default count
        add(CALIBRATED, "latency", replace(blocked, normalize=False), measure_channels(model, graph, images).scores)
    if ceiling:
        add(CEILING, "latency", replace(blocked, normalize=False), macs_per_unit(model, graph, layers))
    if peer:
        tp = torch_pruning_plans(model, name, shape, budget.value, peer_failed)
        out.update({k: (m, None) for k, m in tp.items()})
    return out


def compare_plans_choice(name: str, target, models: dict) -> str:
    """Which of edgeprune's plan shapes ``prune --compare-plans`` keeps, timed as it times them."""
    plans = {SHAPE_OF[k]: r for k, (_, r) in models.items() if k in SHAPE_OF}
    shrunk = {id(r): m for k, (m, r) in models.items() if k in SHAPE_OF}
    chosen, _ = choose_fastest(plans, target, models["dense"][0], model_input_shape(name, target),
                               lambda r: shrunk[id(r)])  # fmt: skip
    return chosen


def measure(name: str, target, models: dict, rounds: int) -> dict:
    shape = model_input_shape(name, target)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        runners = {}
        for i, (label, (m, _)) in enumerate(models.items()):
            path = Path(tmp) / f"model{i}.onnx"  # labels need not be file names
            runners[label] = prepare_model(target, m, shape, path)
        # alternating rounds: drift while they are timed hits every variant
        stats = measure_interleaved(runners, x, replace(target, rounds=target.rounds * rounds))
    return {k: s.median_ms for k, s in stats.items()}, {k: s.round_medians_ms for k, s in stats.items()}


def paired(rounds: dict[str, list[float]], slow: str, fast: str) -> list[float]:
    """How many times faster ``fast`` ran than ``slow``: the median of the per-round ratios, with its 95 %
    interval (rounds alternate between the models, so each round's ratio is a paired one)."""
    r = summarize_ratios([a / b for a, b in zip(rounds[slow], rounds[fast])])
    return [r.median, r.low, r.high]


def bench_model(name: str, target, profile: Profile, budget: Budget, rounds: int, shared: float,
                ceiling: bool = False, branches: bool = False, peer: bool = False, pretrained: bool = False,
                others: dict[str, Profile] | None = None, calibration: str | None = None) -> dict:  # fmt: skip
    peer_failed: dict[str, str] = {}
    models = variants(name, target, profile, budget, shared, ceiling, branches, peer, pretrained, others, peer_failed,
                      calibration)  # fmt: skip
    # what `prune --macs` keeps by default: on the profile's own device the shape timed fastest, elsewhere the
    # one the profile prices lowest (the latency-ranked one first)
    weighed = weighs_shapes("greedy", PlanConstraints(remove_branches=branches))
    timed = weighed and on_its_device(profile, target)
    chose = compare_plans_choice(name, target, models) if peer or timed else None
    default = "latency"
    if weighed:
        default = chose if timed else choose_predicted({SHAPE_OF[k]: models[k][1] for k in SHAPE_OF})[0]
    ms, per_round = measure(name, target, models, rounds)
    shape = model_input_shape(name, target)
    x = torch.randn(*shape)
    macs = {k: count_macs(m, x)[0] for k, (m, _) in models.items()}
    row = {"model": name, "budget": str(budget), "ms": ms, "macs": macs, "compare_plans_chose": chose,
           "default_chose": default}  # fmt: skip
    dense_widths = {layer.path: [layer.cin, layer.cout] for layer in collect_layers(models["dense"][0], shape)}
    for label in [k for k in models if k != "dense"]:
        result = models[label][1]
        if result is None:  # a peer's plan: no prediction; the layers it narrowed, read off the model
            narrowed = {layer.path: [layer.cin, layer.cout] for layer in collect_layers(models[label][0], shape)
                        if [layer.cin, layer.cout] != dense_widths.get(layer.path)}  # fmt: skip
            row[label] = {"macs_speedup": macs["dense"] / macs[label], "measured_speedup": ms["dense"] / ms[label],
                          "speedup_ci": paired(per_round, "dense", label), "predicted_speedup": None,
                          "realization": (ms["dense"] / ms[label]) / (macs["dense"] / macs[label]),
                          "layer_widths": narrowed}  # fmt: skip
            continue
        row[label] = {
            "macs_speedup": macs["dense"] / macs[label],
            "measured_speedup": ms["dense"] / ms[label],
            "speedup_ci": paired(per_round, "dense", label),
            "predicted_speedup": result.dense["latency"] / result.pruned["latency"],
            "realization": (ms["dense"] / ms[label]) / (macs["dense"] / macs[label]),
            # groups cut to a width off the blocking (an untouched group keeps its own width, whatever it is)
            "misaligned_groups": sum(w.kept < w.size and not on_blocking(w.kept, channel_align(target))
                                     for w in result.widths),  # fmt: skip
            "widths": {str(w.group): [w.kept, w.size] for w in result.widths if w.kept < w.size},
            "branches_removed": sum(w.kept == 0 for w in result.widths),
        }
    row["latency_vs"] = {b: ms[b] / ms["latency-driven"] for b in ms if b not in ("dense", "latency-driven")}
    if peer_failed:
        row["peer_failed"] = peer_failed
    if peer and any(k.startswith("Torch-Pruning") for k in ms):  # the goal's figure: edgeprune's default plan
        # over the peer's fastest, paired per round
        theirs = min((k for k in ms if k.startswith("Torch-Pruning")), key=ms.get)
        ours = SHAPE_OF_LABEL[default]
        row["vs_peer"] = {"ours": ours, "theirs": theirs, "speedup": paired(per_round, theirs, ours)}
        if CALIBRATED in ms:
            row["calibrated_vs_peer"] = {"ours": CALIBRATED, "theirs": theirs,
                                         "speedup": paired(per_round, theirs, CALIBRATED)}  # fmt: skip
        if chose != default:  # and the plan --compare-plans kept by its own timing
            kept = SHAPE_OF_LABEL[chose]
            row["compared_vs_peer"] = {"ours": kept, "theirs": theirs, "speedup": paired(per_round, theirs, kept)}
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| model | plan | MACs speedup | predicted | measured | realization | groups cut off the blocking |"
             " branches removed | plan ms | latency-driven ÷ this |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['model']} | dense | | | | | | | {r['ms']['dense']:.3f} | |")
        for label in [k for k in r["ms"] if k != "dense"]:
            d, vs = r[label], r["latency_vs"].get(label)
            ratio = f"**{vs:.2f}**" if vs is not None else ""
            pred = f"{d['predicted_speedup']:.2f}x" if d["predicted_speedup"] else ""
            # the paired figure (median of per-round ratios) with its interval, where the run recorded it
            ci = d.get("speedup_ci") or [d["measured_speedup"]]
            measured = f"{ci[0]:.2f}x" + (f" ({ci[1]:.2f}–{ci[2]:.2f})" if len(ci) == 3 else "")
            realization = ci[0] / d["macs_speedup"]
            shape = SHAPE_OF.get(label, "-")
            kept = [k for k, by in (("default", "default_chose"), ("--compare-plans", "compare_plans_chose"))
                    if shape == r.get(by)]  # fmt: skip
            chosen = f" (kept by {' and '.join(kept)})" if kept else ""
            lines.append(f"| {r['model']} | {label}{chosen} | {d['macs_speedup']:.2f}x | {pred} | "
                         f"{measured} | {realization:.2f} | {d.get('misaligned_groups', '')} | "
                         f"{d.get('branches_removed', '')} | {r['ms'][label]:.3f} | {ratio} |")  # fmt: skip
        for label, error in r.get("peer_failed", {}).items():
            lines.append(f"| {r['model']} | {label}: **failed** ({error[:120]}) | | | | | | | | |")
        for v in filter(None, (r.get("vs_peer"), r.get("compared_vs_peer"), r.get("calibrated_vs_peer"))):
            lines.append(f"| {r['model']} | **{v['ours']} ÷ {v['theirs']}** | | | **{v['speedup'][0]:.2f}x "
                         f"({v['speedup'][1]:.2f}–{v['speedup'][2]:.2f})** | | | | | |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu-ort")
    parser.add_argument("--macs", default="0.5x", help="MACs budget both plans meet")
    parser.add_argument("--model", action="append", help="repeatable; default: " + ", ".join(MODELS))
    parser.add_argument("--rounds", type=int, default=5, help="timing, times the target's rounds")
    parser.add_argument("--max-removed-shared", type=float, default=PlanConstraints.max_removed_shared,
                        help="cap on residual-stream cuts, for both plans (default: the planner's)")
    parser.add_argument("--out", default="bench/planner.json")
    parser.add_argument("--profile", help="latency profile (default: the committed one for the target)")
    parser.add_argument("--also-profile", action="append", default=[], metavar="PATH",
                        help="also the latency-driven plan this profile makes (repeatable)")
    parser.add_argument("--ceiling", action="store_true",
                        help="also time the fastest plan the MACs budget allows, ranked by ms per MAC with "
                             "importance ignored (how fast 'twice as fast from half the MACs' can get here)")
    parser.add_argument("--remove-branches", action="store_true",
                        help="every plan may remove whole residual branches; adds a channels-only latency plan")
    parser.add_argument("--peer", action="store_true",
                        help="also Torch-Pruning's uniform and global plans at the MACs budget (the bench extra)")
    parser.add_argument("--pretrained", action="store_true", help="plan the pretrained weights (where there are)")
    parser.add_argument("--calibration-data", metavar="DATA",
                        help="also the latency-driven plan ranked by output change on images of DATA "
                             "(as many as prune's --calibration-count default)")
    parser.add_argument("--render", metavar="JSON", help="only write the Markdown table of an earlier run's JSON")
    args = parser.parse_args()
    if args.render:
        rows = json.loads(Path(args.render).read_text())["rows"]
        atomic_write_text(Path(args.render).with_suffix(".md"), markdown(rows) + "\n")
        print(markdown(rows))
        return
    warnings.simplefilter("ignore")
    target = load_target(args.target)
    profile = Profile.load(args.profile or find_profile(target.name, target.backend))
    budget = Budget.parse("macs", args.macs)
    others = {f"profile {p}": Profile.load(p) for p in args.also_profile}  # the path: shipped and copies share names
    rows = []
    for name in args.model or MODELS:
        rows.append(bench_model(name, target, profile, budget, args.rounds, args.max_removed_shared, args.ceiling,
                                args.remove_branches, args.peer, args.pretrained, others,
                                args.calibration_data))  # fmt: skip
        print(markdown(rows[-1:]), flush=True)
    settings = {"macs": args.macs, "max_removed_shared": args.max_removed_shared,
                "profile": args.profile or "committed", "also_profile": args.also_profile, "ceiling": args.ceiling,
                "remove_branches": args.remove_branches, "peer": args.peer, "pretrained": args.pretrained,
                "calibration_data": args.calibration_data}  # fmt: skip
    atomic_write_text(args.out, json.dumps({"target": args.target, "settings": settings, "rows": rows}, indent=1))
    atomic_write_text(Path(args.out).with_suffix(".md"), markdown(rows) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
