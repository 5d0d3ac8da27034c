"""The pruned variants a profile is calibrated and checked on: uniform cuts, seeded random plans, and the plans
a planner makes (passed in, so that this stage does not import the planning one)."""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
import torch.nn as nn

from edgeprune.graph import build_graph
from edgeprune.latency.layers import Layer
from edgeprune.latency.profile import DEFAULT_SETTINGS, Profile, ProfileSettings
from edgeprune.prune import Plan, prune_model, uniform_plan

CALIBRATION_SEED = 12345

# (model, graph, dense layers, input side) -> [(label, plan)]: the plans a planner makes for one model
PlanMaker = Callable[[nn.Module, object, list[Layer], int], list[tuple[str, Plan]]]
# (profile, MACs budgets such as "0.5x") -> the PlanMaker that plans with that profile at those budgets
Planner = Callable[[Profile, list[str]], PlanMaker]


def random_plan(graph, rng: random.Random, low: float = 0.3, high: float = 1.0, align: int = 1) -> Plan:
    """Keep a random fraction in [low, high] of every prunable group (random channels); with ``align``, the
    width a group keeps is rounded down to a multiple of it, where the group is wider than that."""
    keep = {}
    for g in graph.prunable_groups:
        units = g.prunable_units
        n = max(1, round(rng.uniform(low, high) * len(units)))
        frozen = [i for i in range(g.size) if g.units[i].frozen]
        if align > 1 and g.size > align:
            width = max((n + len(frozen)) // align * align, align)
            n = min(max(width - len(frozen), 1), len(units))
        keep[g.id] = sorted(frozen + rng.sample(units, n))
    return Plan(graph.model_name, graph.fingerprint, keep)


def calibration_variants(
    model: nn.Module, name: str, shape: tuple[int, ...], settings: ProfileSettings = DEFAULT_SETTINGS, align: int = 1
) -> list[tuple[str, nn.Module]]:
    """The pruned variants every calibration measures: uniform ratios, seeded random plans, then seeded random
    plans on the channel blocking ``align`` (when it is over 1)."""
    graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=name)
    rng = random.Random(CALIBRATION_SEED)
    plans = [(f"uniform-{r}", uniform_plan(model, graph, r) if r else None) for r in settings.calibration_ratios]
    plans += [(f"random-{i}", random_plan(graph, rng)) for i in range(settings.calibration_random)]
    if align > 1:  # drawn after the others, so those stay the plans earlier profiles were fitted on
        plans += [(f"blocked-{i}", random_plan(graph, rng, align=align)) for i in range(settings.calibration_blocked)]
    return [(label, prune_model(model, graph, plan)[0] if plan else model) for label, plan in plans]


def planned_variants(model: nn.Module, name: str, shape: tuple[int, ...], layers: list[Layer], maker: PlanMaker
                     ) -> list[tuple[str, nn.Module]]:  # fmt: skip
    """The plans ``maker`` makes for ``model`` (its ``layers`` at ``shape``), pruned."""
    graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=name)
    return [(label, prune_model(model, graph, plan)[0]) for label, plan in maker(model, graph, layers, shape[-1])]
