"""The plan shapes a FLOPs-driven tool makes, under a budget, widths on the target's blocking:

- uniform: every prunable group cut by one fraction (Torch-Pruning's uniform ratio with ``round_to``);
- global: the least important units of the whole network go first, each group's importance divided by its
  mean so groups compare (Torch-Pruning's global pruning), whatever each cut saves.

Both are priced with the same cost models and constraints as the greedy planner, so the planner's own plan
can be compared with them and chosen between by measurement (:mod:`edgeprune.plan.candidates`). Which units
go inside a group is decided by importance in every shape.
"""

from __future__ import annotations

import torch.nn as nn

from edgeprune.graph.groups import ChannelGraph
from edgeprune.latency.layers import Layer
from edgeprune.plan.budget import Budget, BudgetError, PlanConstraints
from edgeprune.plan.planner import Planner, PlanResult, importance_for, make_costs


def _next_uniform_cut(planner: Planner, kind: str):
    """The cut that keeps the plan most uniform: the group whose next width (on the blocking) leaves it the
    largest kept fraction; among equal fractions, the one losing the least importance per unit of ``kind``."""
    best = None
    for state in planner.groups:
        widths = planner.candidate_widths(state, kind)
        widths = [w for w in widths if w > 0]  # a uniform cut never empties a group
        if not widths:
            continue
        units = state.order[: state.width - widths[0]]
        deltas = state.deltas(units)
        saved = planner.saving(kind, deltas)
        if saved <= 1e-12:
            continue
        key = (-widths[0] / state.group.size, state.importance(units) / saved)
        if best is None or key < best[0]:
            best = (key, state, units, deltas)
    return best


def _next_global_cut(planner: Planner, kind: str):
    """The cut to the next width (on the blocking) whose units have the least mean importance, relative to
    their group's mean: no cost enters the ranking."""
    best = None
    for state in planner.groups:
        widths = [w for w in planner.candidate_widths(state, kind) if w > 0]  # never empties a group
        if not widths:
            continue
        units = state.order[: state.width - widths[0]]
        deltas = state.deltas(units)
        if planner.saving(kind, deltas) <= 1e-12:
            continue
        mean = float(state.scores[state.group.prunable_units].mean()) or 1.0
        key = float(state.scores[units].mean()) / mean
        if best is None or key < best[0]:
            best = (key, state, units, deltas)
    return best


NEXT_CUT = {"uniform": _next_uniform_cut, "global": _next_global_cut}


def plan_by_shape(
    model: nn.Module,
    graph: ChannelGraph,
    layers: list[Layer],
    budget: Budget,
    profile=None,
    importance: dict[int, object] | None = None,
    constraints: PlanConstraints = PlanConstraints(),
    side: int | None = None,
    shape: str = "uniform",
) -> PlanResult:
    """A plan of ``shape`` (``uniform`` or ``global``) that meets ``budget`` (other arguments as
    :func:`edgeprune.plan.planner.plan_pruning`): groups are cut one width step at a time until the budget
    holds, uniform: always the group that keeps the largest fraction afterwards; global: the step whose units
    matter least to their group.

    Groups whose cap keeps them whole (residual streams by default) stay whole; whole residual branches are
    never removed by these shapes.

    Raises:
        BudgetError: the budget is below what cutting every group to its floor reaches.
    """
    costs = make_costs([budget.kind], profile, graph.model_name, side)
    no_branches = PlanConstraints(**{**vars(constraints), "remove_branches": False})
    planner = Planner(graph, layers, costs, importance_for(model, graph, importance), no_branches)
    limit = budget.resolve(planner.dense[budget.kind])
    while planner.total(budget.kind) > limit:
        cut = NEXT_CUT[shape](planner, budget.kind)
        if cut is None:
            dense = planner.dense[budget.kind]
            raise BudgetError(
                f"{budget} is below what a {shape} cut reaches ({planner.total(budget.kind) / dense:.3f}x with "
                f"every group at its floor): relax the budget or the constraints"
            )
        planner.apply(*cut[1:])
    return planner.result(budget, shape)
