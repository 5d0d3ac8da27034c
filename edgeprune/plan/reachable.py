"""Whether a budget is within what the constraints let a plan reach, and, where residual streams hold the floor
up, which share of each stream would reach it (else which larger cap on the other groups would): the planner's
error says so instead of naming a knob alone."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from edgeprune.graph.groups import ChannelGroup
from edgeprune.latency.layers import on_blocking
from edgeprune.plan.budget import Budget, BudgetError, PlanConstraints

if TYPE_CHECKING:
    from edgeprune.plan.planner import Planner

SHARES = (0.25, 0.5, 0.75)  # of each residual stream, tried in order for the hint
CAPS = (0.85, 0.9, 0.95)  # of each other group, tried where no stream share is named (transformers' MLPs)


def least_width(group: ChannelGroup, width: int, c: PlanConstraints, cap: float) -> int:
    """The least width ``group`` (now ``width`` wide) may be cut to when at most ``cap`` of it may go."""
    frozen = group.size - len(group.prunable_units)
    floor = max(c.min_channels, math.ceil(group.size * (1 - cap)), frozen, 1)
    if c.blocking:  # the least width on the blocking; none left below this one: no cut
        floor = min((x for x in range(floor, width) if on_blocking(x, c.blocking)), default=width)
    return min(width, floor)


def check_reachable(planner: Planner, budget: Budget) -> float:
    """The budget in the cost's unit; :class:`BudgetError` stating the reachable minimum when below it."""
    c = planner.c
    dense = planner.dense[budget.kind]
    limit = budget.resolve(dense)
    floor = planner.minimum_total(budget.kind)
    unit = planner.costs[budget.kind].unit
    if floor > limit:
        raise BudgetError(
            f"{budget} ({limit:.4g} {unit}) is below the reachable minimum of {floor:.4g} {unit} "
            f"({floor / dense:.3f}x) with min_channels={c.min_channels}, max_removed={c.max_removed:g} "
            f"and max_removed_shared={c.max_removed_shared:g} (residual streams)"
            + (", residual branches removable" if c.remove_branches else "")
            + ": relax the budget or the constraints"
            + (_stream_hint(planner, budget.kind, limit) or _cap_hint(planner, budget.kind, limit))
        )
    return limit


def _stream_hint(planner: Planner, kind: str, limit: float) -> str:
    """Why the floor is high when residual streams hold it up, and the knobs that let them be cut."""
    streams = [s for s in planner.groups if s.group.shared]
    if not streams or planner.c.max_removed_shared > 0:
        return ""
    which = ("every prunable group is a residual stream" if len(streams) == len(planner.groups)
             else f"{len(streams)} of {len(planner.groups)} prunable groups are residual streams")  # fmt: skip
    streams = [s for s in streams if not s.removable]
    share = next((x for x in SHARES if _reaches(planner, streams, min(planner.c.max_removed, x), kind, limit)), None)
    knob = (f"--max-removed-shared {share:g} reaches it" if share is not None
            else f"--max-removed-shared F lets F of each be cut ({SHARES[-1]:g} does not reach it)")  # fmt: skip
    branches = "" if planner.c.remove_branches else ", --remove-branches lets whole blocks go"
    return f" ({which}, kept whole by default; {knob}{branches})"


def _cap_hint(planner: Planner, kind: str, limit: float) -> str:
    """The least of :data:`CAPS` of each group that is not a residual stream that, cut, reaches ``limit``."""
    ordinary = [s for s in planner.groups if not s.group.shared]
    larger = [c for c in CAPS if c > planner.c.max_removed] if ordinary else []
    cap = next((c for c in larger if _reaches(planner, ordinary, c, kind, limit)), None)
    return "" if cap is None else f" (--max-removed {cap:g} reaches it: up to {cap:g} of each group may go)"


def _reaches(planner: Planner, states: list, cap: float, kind: str, limit: float) -> bool:
    """Whether cutting up to ``cap`` of each group in ``states`` brings the reachable minimum within ``limit``."""
    lowest = {s.group.id: least_width(s.group, s.width, planner.c, cap) for s in states}
    return planner.minimum_total(kind, lowest) <= limit
