"""Where the predictor misses a plan that removes residual branches: the plan's removals split by stage, each
part and the whole plan timed beside the dense model in one interleaved run on the target, against the profile's
prediction. Removal is priced per layer; if the parts' measured savings do not add up to the plan's, it is not
additive on that target.

    python tools/bench_removal_parts.py --profile P [--model cifar_resnet56] [--macs 0.5x] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_planner import measure, paired  # noqa: E402

from edgeprune.graph import build_graph
from edgeprune.latency.layers import collect_layers
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import Profile
from edgeprune.latency.profiler import model_input_shape
from edgeprune.models import create_model
from edgeprune.plan.planner import Budget, PlanConstraints, plan_pruning
from edgeprune.prune import Plan, prune_model
from edgeprune.targets import channel_align, load_target


def parts_of(plan: Plan, graph) -> dict[str, Plan]:
    """The plan, and its branch removals grouped by the stage (first path component) their branch sits in."""
    gone = {g: k for g, k in plan.keep.items() if not k and g in graph.branches}
    stages: dict[str, dict[int, list[int]]] = {}
    for g, k in gone.items():
        stages.setdefault(graph.branches[g].inner_layers[0].split(".")[0], {})[g] = k
    out = {"the plan": plan}
    out.update({f"{stage}: {len(s)} branches removed": Plan(plan.model, plan.fingerprint, s)
                for stage, s in sorted(stages.items())})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cifar_resnet56")
    parser.add_argument("--target", default="cpu-ort")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--macs", default="0.5x")
    parser.add_argument("--rounds", type=int, default=2, help="timing, times the target's rounds")
    parser.add_argument("--out", help="JSON file for the rows")
    args = parser.parse_args()
    target, profile = load_target(args.target), Profile.load(args.profile, strict=False)
    torch.manual_seed(0)
    model = create_model(args.model, pretrained=True).eval()
    shape = model_input_shape(args.model, target)
    graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=args.model)
    layers = collect_layers(model, shape)
    c = PlanConstraints(align=channel_align(target), remove_branches=True)
    plan = plan_pruning(model, graph, layers, Budget.parse("macs", args.macs), "latency", profile, None, c,
                        side=shape[-1]).plan  # fmt: skip
    cost = LatencyModel(profile, args.model)
    dense_ms = cost.predict(layers).ms
    models, predicted = {"dense": (model, None)}, {}
    for label, part in parts_of(plan, graph).items():
        pruned = prune_model(model, graph, part)[0].eval()
        models[label] = (pruned, None)
        predicted[label] = dense_ms / cost.predict_pruned(layers, collect_layers(pruned, shape)).ms
    _, per_round = measure(args.model, target, models, args.rounds)
    rows = [{"removed": k, "predicted": round(v, 3), "measured": [round(x, 3) for x in paired(per_round, "dense", k)]}
            for k, v in predicted.items()]  # fmt: skip
    for r in rows:
        print(f"| {r['removed']} | {r['predicted']:.2f}x | {r['measured'][0]:.2f}x "
              f"({r['measured'][1]:.2f}-{r['measured'][2]:.2f}) |")  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "target": args.target, "profile": args.profile,
                                              "macs": args.macs, "rows": rows}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
