"""The correctness oracle: what a pruned model must compute.

A physically shrunk model must equal the original model with each removed channel's activation forced
to zero where it is consumed. The masking here uses only forward pre-hooks on the original modules, so
it shares no code with the surgery in :mod:`edgeprune.prune.shrink`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from edgeprune.graph.groups import CONSUMER_KINDS, LINEAR_IN, ChannelGraph
from edgeprune.prune.plan import Plan


def consumed_removals(graph: ChannelGraph, plan: Plan) -> dict[str, tuple[str, list[int]]]:
    """Module path -> (consumer kind, input indices whose channel the plan removes)."""
    out: dict[str, tuple[str, set[int]]] = {}
    for gid, gone in plan.removed(graph).items():
        for u in gone:
            for m in graph.groups[gid].units[u].members:
                if m.kind in CONSUMER_KINDS:
                    out.setdefault(m.path, (m.kind, set()))[1].add(m.index)
    return {p: (k, sorted(idx)) for p, (k, idx) in out.items()}


@torch.no_grad()
def masked_forward(model: nn.Module, graph: ChannelGraph, plan: Plan, x: torch.Tensor) -> torch.Tensor:
    """Run the *original* model with the plan's removed channels zeroed at every consumer."""
    handles = []

    def zero_hook(kind: str, index: torch.Tensor):
        def hook(module, args):
            inp = args[0].clone()
            if kind == LINEAR_IN:
                inp[..., index] = 0
            else:
                inp[:, index] = 0
            return (inp, *args[1:])

        return hook

    try:
        for path, (kind, idx) in consumed_removals(graph, plan).items():
            module = model.get_submodule(path)
            handles.append(module.register_forward_pre_hook(zero_hook(kind, torch.tensor(idx))))
        return model(x)
    finally:
        for h in handles:
            h.remove()


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖actual − expected‖ / ‖expected‖ (with a floor so an all-zero output does not divide by zero)."""
    return float((actual - expected).norm() / expected.norm().clamp_min(1e-12))
