"""A uniform plan under a budget: every prunable group cut by one fraction, widths on the target's blocking.

This is the plan shape a FLOPs-driven tool makes (Torch-Pruning's uniform ratio with ``round_to``), priced
with the same cost models and constraints as the greedy planner so that the two can be compared, and chosen
between by measurement (:mod:`edgeprune.plan.candidates`). Which units go inside a group is still decided by
importance; only how many is uniform.
"""

from __future__ import annotations

from typing import NamedTuple

import torch.nn as nn

from edgeprune.graph.groups import ChannelGraph
from edgeprune.latency.layers import Layer
from edgeprune.plan.budget import Budget, BudgetError, PlanConstraints
from edgeprune.plan.planner import Planner, PlanResult, importance_for, make_costs


class _Cut(NamedTuple):
    """A group's next cut on the blocking."""

    kept: float  # the group's kept fraction after it
    rate: float  # importance lost per unit of the budget's kind saved
    total: float  # the budget's total after it
    state: object
    units: list[int]
    deltas: dict[int, list[int]]


def _cuts(planner: Planner, kind: str) -> list[_Cut]:
    cuts = []
    for state in planner.groups:
        widths = planner.candidate_widths(state, kind)
        widths = [w for w in widths if w > 0]  # a uniform cut never empties a group
        if not widths:
            continue
        units = state.order[: state.width - widths[0]]
        deltas = state.deltas(units)
        saved = planner.saving(kind, deltas)
        if saved > 1e-12:
            kept, rate = widths[0] / state.group.size, state.importance(units) / saved
            cuts.append(_Cut(kept, rate, planner.total_after(kind, saved), state, units, deltas))
    return cuts


def _next_cut(planner: Planner, kind: str, limit: float) -> _Cut | None:
    """The cut that keeps the plan most uniform: the group whose next width (on the blocking) leaves it the
    largest kept fraction; among equal fractions, the one losing the least importance per unit of ``kind``.

    The last cut is the one that meets ``limit`` removing least, among those that leave no group narrower (as a
    fraction) than the narrowest now: taken in uniform order, one group's whole block step can go far past the
    budget (docs/concepts/planner.md, plan shapes)."""
    cuts = _cuts(planner, kind)
    narrowest = min(s.width / s.group.size for s in planner.groups)
    last = [c for c in cuts if c.total <= limit and c.kept >= narrowest - 1e-9]
    if last:
        return max(last, key=lambda c: (c.total, -c.rate))
    return min(cuts, key=lambda c: (-c.kept, c.rate), default=None)


def plan_uniform(
    model: nn.Module,
    graph: ChannelGraph,
    layers: list[Layer],
    budget: Budget,
    profile=None,
    importance: dict[int, object] | None = None,
    constraints: PlanConstraints = PlanConstraints(),
    side: int | None = None,
) -> PlanResult:
    """A plan as uniform as the widths allow that meets ``budget`` (arguments as
    :func:`edgeprune.plan.planner.plan_pruning`): groups are cut one width step at a time, always the one
    that keeps the largest fraction afterwards, until the budget holds.

    Groups whose cap keeps them whole (residual streams by default) stay whole; whole residual branches are
    never removed by a uniform cut.

    Raises:
        BudgetError: the budget is below what cutting every group to its floor reaches.
    """
    costs = make_costs([budget.kind], profile, graph.model_name, side)
    no_branches = PlanConstraints(**{**vars(constraints), "remove_branches": False})
    planner = Planner(graph, layers, costs, importance_for(model, graph, importance), no_branches)
    limit = planner.check_reachable(budget)  # the planner's own error: the floor, and the knobs that lower it
    while planner.total(budget.kind) > limit:
        cut = _next_cut(planner, budget.kind, limit)
        if cut is None:
            dense = planner.dense[budget.kind]
            raise BudgetError(
                f"{budget} is below what a uniform cut reaches ({planner.total(budget.kind) / dense:.3f}x with "
                f"every group at its floor): relax the budget or the constraints"
            )
        planner.apply(cut.state, cut.units, cut.deltas)
    return planner.result(budget, "uniform")
