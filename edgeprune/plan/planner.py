"""Global channel pruning under a budget: greedy removal ranked by importance per unit of cost saved.

Every prunable group is a column of units sorted by importance. Each greedy step asks every group what
removing its next few units would save (the marginal cost of every layer whose input or output channels
shrink, producers and consumers alike, at the widths the network has now) and removes the step with the
least importance per millisecond (or MAC) saved. Savings are recomputed after every step, so the
latency staircase and the coupling between neighbouring layers are seen as widths change.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from edgeprune.graph.groups import CONV_IN, CONV_OUT, LINEAR_IN, LINEAR_OUT, RNN_IN, ChannelGraph, ChannelGroup
from edgeprune.latency.costs import LayerCost
from edgeprune.latency.layers import Layer, on_blocking
from edgeprune.latency.model import LatencyModel
from edgeprune.plan import reachable
from edgeprune.plan.budget import Budget, BudgetError, PlanConstraints
from edgeprune.plan.result import GroupWidth, PlanResult
from edgeprune.prune.importance import magnitude_scores
from edgeprune.prune.plan import Plan

_SIDE = {CONV_OUT: 1, LINEAR_OUT: 1, CONV_IN: 0, LINEAR_IN: 0, RNN_IN: 0}  # 0 = input channels, 1 = output channels
LOOKAHEAD = 4  # candidate widths tried per group and step before widening to all of them
BEYOND_MARGIN = 0.10  # a prediction this far below the fastest calibration run is an extrapolation worth a note


class _GroupState:
    """One group: its units in removal order and the layer sides each unit's removal shrinks."""

    def __init__(self, group: ChannelGroup, scores: np.ndarray, entries: dict, already: set[int], c: PlanConstraints,
                 removable: bool = False, whole_weight: float = 1.0):  # fmt: skip
        # removable: may go to width 0 (a whole residual branch); whole_weight: what emptying it weighs per
        # unit of its scores (its mean importance against all groups')
        self.group, self.removable, self.whole_weight = group, removable, whole_weight
        prunable = [i for i in group.prunable_units if i not in already]
        self.order = sorted(prunable, key=lambda i: (scores[i], i))  # next to remove first
        self.scores = scores
        self.removed = sorted(already)
        cap = min(c.max_removed, c.max_removed_shared) if group.shared else c.max_removed
        self.minimum = reachable.least_width(group, group.size - len(already), c, cap)
        self.lowest = 0 if removable else self.minimum  # the least width any step may reach
        table = group.units[0].table
        cols: dict[tuple[str, int], int] = {}
        hits: list[tuple[int, int]] = []  # (unit, column) per member that shrinks a layer
        for u, unit in enumerate(group.units):
            for b in table.block[unit.start : unit.end].tolist():
                kind, path, _ = table.blocks[b]
                if kind in _SIDE and path in entries:
                    hits.append((u, cols.setdefault((path, _SIDE[kind]), len(cols))))
        self.counts = np.zeros((group.size, len(cols)), dtype=np.int64)
        if hits:
            np.add.at(self.counts, tuple(np.array(hits).T), 1)
        self.targets = [(entries[path], side) for (path, side) in cols]  # column -> (layer indices, side)

    @property
    def width(self) -> int:
        return self.group.size - len(self.removed)

    def importance(self, units: list[int]) -> float:
        """What removing ``units`` (next in order) loses; emptying the group is weighed across groups."""
        lost = float(self.scores[units].sum())
        return lost * self.whole_weight if len(units) == self.width else lost

    def deltas(self, units: list[int]) -> dict[int, list[int]]:
        """Layer index -> [input channels lost, output channels lost] when ``units`` go."""
        lost = self.counts[units].sum(axis=0)
        out: dict[int, list[int]] = {}
        for (layer_ids, side), n in zip(self.targets, lost.tolist()):
            if n:
                for i in layer_ids:
                    out.setdefault(i, [0, 0])[side] += n
        return out


class Planner:
    """Greedy global pruning of ``graph``'s groups; see the module docstring."""

    def __init__(
        self,
        graph: ChannelGraph,
        layers: list[Layer],
        costs: dict[str, LayerCost],
        importance: dict[int, np.ndarray],
        constraints: PlanConstraints = PlanConstraints(),
        staircases: dict[int, list[int]] | None = None,
        start: Plan | None = None,
    ) -> None:
        self.graph, self.layers, self.costs, self.c = graph, layers, costs, constraints
        self.staircases = staircases or {}
        self.cin = np.array([x.cin for x in layers])
        self.cout = np.array([x.cout for x in layers])
        entries: dict[str, list[int]] = {}
        for i, layer in enumerate(layers):
            entries.setdefault(layer.path, []).append(i)
        already = start.removed(graph) if start else {}
        self.groups: list[_GroupState] = []
        raw = [np.asarray(importance[g.id], dtype=np.float64)[g.prunable_units] for g in graph.prunable_groups]
        overall = float(np.concatenate(raw).mean()) if raw and sum(map(len, raw)) else 0.0
        for group in graph.prunable_groups:
            scores = np.asarray(importance[group.id], dtype=np.float64)
            removable = constraints.remove_branches and group.id in graph.branches
            whole = 1.0
            if constraints.normalize:
                units = group.prunable_units
                mean = scores[units].mean() if units else 0.0
                spread = len(units) ** constraints.width_power if units else 1.0
                scores = scores / (mean * spread) if mean > 0 else scores
                # Normalized, every group's channels sum to its width over the spread whatever their energy, so
                # emptying a group (a whole branch) is weighed by its own mean against all groups' as well.
                whole = mean / overall if mean > 0 and overall > 0 else 1.0
            state = _GroupState(group, scores, entries, set(already.get(group.id, [])), constraints, removable, whole)
            self.groups.append(state)
            for layer_id, (d_in, d_out) in state.deltas(state.removed).items():
                self.cin[layer_id] -= d_in
                self.cout[layer_id] -= d_out
        # what steps are ranked by: set per budget in run(); the costs themselves until then
        self.ranking = dict(costs)
        self.sums = {k: self._layer_sum(cost) for k, cost in costs.items()}
        full_in, full_out = np.array([x.cin for x in layers]), np.array([x.cout for x in layers])
        self.dense_sums = {k: self._layer_sum(c, full_in, full_out) for k, c in costs.items()}
        self.dense = {k: c.total(self.dense_sums[k]) for k, c in costs.items()}
        self.steps = 0

    def _layer_sum(self, cost: LayerCost, cin=None, cout=None) -> float:
        cin = self.cin if cin is None else cin
        cout = self.cout if cout is None else cout
        return sum(cost.layer(x, int(a), int(b)) for x, a, b in zip(self.layers, cin, cout))

    def total(self, kind: str) -> float:
        return self.costs[kind].total(self.sums[kind])

    def total_after(self, kind: str, saved: float) -> float:
        """What ``kind`` totals once ``saved`` (in layer-sum units, :meth:`saving`) is taken off the layer sum: through
        the cost's own line, as :meth:`total` (a latency line scales and offsets the sum, and floors it)."""
        return self.costs[kind].total(self.sums[kind] - saved)

    def saving(self, kind: str, deltas: dict[int, list[int]], ranks: bool = False) -> float:
        """How much the layer sum of ``kind`` drops when ``deltas`` are applied to the current widths (``ranks``:
        as steps are ranked, :attr:`ranking`)."""
        cost, layers, saved = (self.ranking if ranks else self.costs)[kind], self.layers, 0.0
        for i, (d_in, d_out) in deltas.items():
            a, b = int(self.cin[i]), int(self.cout[i])
            saved += cost.layer(layers[i], a, b) - cost.layer(layers[i], a - d_in, b - d_out)
        return saved

    def candidate_widths(self, state: _GroupState, ranked_by: str) -> list[int]:
        """Widths below the current one this group may step to, nearest first."""
        w, size = state.width, state.group.size
        step = max(1, round(self.c.step * size))
        widths = set(range(size - step, state.minimum - 1, -step)) | {state.minimum}
        snap = self.c.snap and ranked_by == "latency"
        stairs = self.staircases.get(state.group.id) if snap else None
        # the blocking holds for any ranking: a MACs-ranked plan off it runs as slowly as a latency-ranked one
        if self.c.blocking:
            # measured: widths off the kernels' channel blocking cost as much as the unpruned layer, or more
            widths = {x for x in range(state.minimum, w) if on_blocking(x, self.c.blocking)}
        elif stairs:
            # below the scanned stairs the coarse steps stand; within them only widths before a step are kept
            low = min(stairs)
            widths = {x for x in widths if x < low} | {x for x in stairs if x >= state.minimum} | {state.minimum}
        widths = {x for x in widths if state.minimum <= x} | ({0} if state.removable else set())
        return sorted((x for x in widths if x < w), reverse=True)

    def best_step(self, ranked_by: str, everything: bool = False, priced: tuple[str, float] | None = None):
        """The step with the least importance per unit of ``ranked_by`` saved. ``priced`` = (kind, rate): each
        step's importance also counts ``rate`` times what it adds to ``kind`` (a MACs step that adds time)."""
        best = None
        for state in self.groups:
            widths = self.candidate_widths(state, ranked_by)
            if not everything:  # removing a branch is always weighed: its saving is not a neighbour's
                widths = widths[:LOOKAHEAD] + [0] * (state.removable and 0 in widths[LOOKAHEAD:])
            for width in widths:
                units = state.order[: state.width - width]
                deltas = state.deltas(units)
                saved = self.saving(ranked_by, deltas, ranks=True)
                if saved <= 1e-12:
                    continue
                cost = state.importance(units)
                if priced:
                    cost += priced[1] * max(0.0, -self.saving(priced[0], deltas, ranks=True))
                score = cost / saved
                if best is None or score < best[0]:
                    best = (score, state, units, deltas)
        return best

    def apply(self, state: _GroupState, units: list[int], deltas: dict[int, list[int]]) -> None:
        for kind in self.sums:
            self.sums[kind] -= self.saving(kind, deltas)
        for i, (d_in, d_out) in deltas.items():
            self.cin[i] -= d_in
            self.cout[i] -= d_out
        state.removed = sorted(state.removed + units)
        state.order = state.order[len(units) :]
        self.steps += 1

    def minimum_total(self, kind: str, lowest: dict[int, int] | None = None) -> float:
        """The least the budget metric can get under the constraints: every group at its minimum width, except
        groups whose narrowing costs more than it saves (a slow width on the latency staircase), kept as they are.
        ``lowest``: other least widths for some groups (group id -> width), as looser constraints would allow.
        """
        cost = self.costs[kind]
        cin, cout = self.cin.copy(), self.cout.copy()
        lowest = lowest or {}
        cuts = [state.deltas(state.order[: state.width - lowest.get(state.group.id, state.lowest)])
                for state in self.groups]  # fmt: skip
        for deltas in cuts:
            for i, (d_in, d_out) in deltas.items():
                cin[i] -= d_in
                cout[i] -= d_out
        best = self._layer_sum(cost, cin, cout)
        for deltas in cuts:  # one pass: undo each group's cut where the total drops without it
            trial_in, trial_out = cin.copy(), cout.copy()
            for i, (d_in, d_out) in deltas.items():
                trial_in[i] += d_in
                trial_out[i] += d_out
            trial = self._layer_sum(cost, trial_in, trial_out)
            if trial < best:
                best, cin, cout = trial, trial_in, trial_out
        return cost.total(best)

    def check_reachable(self, budget: Budget) -> float:
        """The budget in the cost's unit; :class:`BudgetError` stating the reachable minimum when below it, and
        the knobs that lower it (:func:`edgeprune.plan.reachable.check_reachable`)."""
        return reachable.check_reachable(self, budget)

    def rank_for(self, budget: Budget) -> None:
        """Rank steps by what ``budget`` leaves to tell plans apart. Under a MACs or parameter budget every plan
        that meets it has about the same MACs, so the calibration's MACs term (and the activation term, which
        follows the MACs) prices them alike and only blurs the layer tables' differences: steps are ranked by
        the tables (:meth:`LatencyModel.ranking`). Under a latency budget each step is ranked by all it takes
        off the price the budget is checked against."""
        tables = budget.kind != "latency"
        self.ranking = {k: c.ranking() if tables and isinstance(c, LatencyModel) else c for k, c in self.costs.items()}

    def run(self, budget: Budget, ranked_by: str) -> float:
        """Remove steps until ``budget`` holds; returns the resolved budget in the cost's unit."""
        self.rank_for(budget)
        limit = self.check_reachable(budget)
        unit = self.costs[budget.kind].unit
        rate = 0.0  # importance given up per unit of ranked_by saved, at the last step that saved some
        while self.total(budget.kind) > limit:
            step = self.best_step(ranked_by) or self.best_step(ranked_by, everything=True)
            if step is not None:
                rate = step[0]
            elif budget.kind != ranked_by:  # what is left saves MACs but no time (a flat stair): every step adds
                # some; each is charged at the rate the steps before it paid for time, so the cuts that slow the
                # model least per MAC go first, and importance still counts
                step = self.best_step(budget.kind, everything=True, priced=(ranked_by, rate))
            if step is None:
                raise BudgetError(
                    f"no step that still lowers {budget.kind} is left at {self.total(budget.kind):.4g} {unit}, "
                    f"above the budget of {limit:.4g} {unit}: relax the budget or the constraints"
                )
            self.apply(*self.least_crossing(step, ranked_by, budget.kind, limit)[1:])
        return limit

    def least_crossing(self, step, ranked_by: str, kind: str, limit: float):
        """``step``, or where it would take ``kind`` below ``limit``, the smallest cut of the same group that still
        meets it. A step may jump down a stair of the latency staircase (MobileNet-V3's 608 -> 208 channels, from
        0.545x to 0.461x of the MACs); past the budget that jump only costs importance the budget did not ask
        for, and a plan then lands far under the MACs it was compared at."""
        state, units = step[1], step[2]
        if self.total_after(kind, self.saving(kind, step[3])) >= limit:
            return step
        for width in self.candidate_widths(state, ranked_by):  # nearest first: the fewest units
            if width <= state.width - len(units):
                break
            fewer = state.order[: state.width - width]
            deltas = state.deltas(fewer)
            meets = self.total_after(kind, self.saving(kind, deltas)) <= limit
            if meets and self.saving(ranked_by, deltas, ranks=True) > 1e-12:
                return (step[0], state, fewer, deltas)
        return step

    def result(self, budget: Budget, ranked_by: str) -> PlanResult:
        keep = {s.group.id: [i for i in range(s.group.size) if i not in set(s.removed)]
                for s in self.groups if s.removed}  # fmt: skip
        widths = [GroupWidth(s.group.id, s.group.size, s.width, s.lowest, s.group.describe()) for s in self.groups]
        extrapolated = sorted(set().union(*(getattr(c, "extrapolated", set()) for c in self.costs.values())))
        plan = Plan(self.graph.model_name, self.graph.fingerprint, keep)
        totals = {k: self.total(k) for k in self.costs}
        return PlanResult(plan, budget, ranked_by, self.dense, totals, widths, self.steps, extrapolated,
                          self.minimum_total(budget.kind), beyond_calibration=self._beyond_calibration(totals))

    def _beyond_calibration(self, totals: dict[str, float]) -> dict | None:
        """The plan's and the lowest calibration run's table sums, each over the dense model's, when the plan's is
        well below every run the profile's calibration line was fitted on (its prediction then extrapolates)."""
        cost = self.costs.get("latency")
        knee = cost.knee if isinstance(cost, LatencyModel) and self.dense["latency"] else None
        if not knee:
            return None
        dense = cost.tables_sum(self.dense_sums["latency"])
        lowest, tables = knee[0] / dense, cost.tables_sum(self.sums["latency"]) / dense
        if tables >= lowest * (1 - BEYOND_MARGIN):
            return None
        return {"tables": tables, "lowest_calibrated": lowest, "predicted": totals["latency"] / self.dense["latency"]}


def importance_for(model: nn.Module, graph: ChannelGraph, scores: dict[int, object] | None = None) -> dict:
    """Per-group unit scores: the given ones (a regularizer's), else out-in weight energy."""
    out = {}
    for group in graph.prunable_groups:
        given = (scores or {}).get(group.id)
        if given is not None and len(given) != group.size:
            raise BudgetError(f"importance for group {group.id} has {len(given)} scores; the group has {group.size}")
        value = given if given is not None else magnitude_scores(model, group)
        out[group.id] = torch.as_tensor(value, dtype=torch.float64).numpy()
    return out


SOLVERS = ("greedy", "knapsack")


def make_costs(kinds: list[str], profile=None, model_name: str = "", side: int | None = None) -> dict[str, LayerCost]:
    """The cost models a planner keeps totals of: ``kinds`` (the budget's, the ranking's), MACs and parameters,
    and latency whenever there is a profile."""
    from edgeprune.latency.costs import make_cost

    wanted = dict.fromkeys([*kinds, "macs", "params"] + (["latency"] if profile else []))
    return {k: make_cost(k, profile, model_name, side) for k in wanted}


def plan_pruning(
    model: nn.Module,
    graph: ChannelGraph,
    layers: list[Layer],
    budget: Budget,
    ranked_by: str = "latency",
    profile=None,
    importance: dict[int, object] | None = None,
    constraints: PlanConstraints = PlanConstraints(),
    solver: str = "greedy",
    start: Plan | None = None,
    side: int | None = None,
) -> PlanResult:
    """Plan which channels to remove so that ``budget`` holds.

    Args:
        model: the model ``graph`` was built from (for weight-energy importance when none is given).
        graph: its channel groups.
        layers: its conv/linear layers at the target's input shape (:func:`edgeprune.latency.collect_layers`).
        budget: the limit to reach (latency needs ``profile``).
        ranked_by: what a step's saving is measured in: ``latency`` (needs ``profile``) or ``macs``
            (FLOPs-driven, for comparison) or ``params``.
        profile: the target's latency profile.
        importance: group id -> per-unit scores (e.g. a regularizer's); weight energy where missing.
        constraints: per-group limits.
        solver: ``greedy`` (iterative, re-scored after every step) or ``knapsack``.
        start: units already removed (iterative pruning continues from them).
        side: the square input side ``layers`` were collected at (picks the profile's calibration line).
    """
    from edgeprune.latency.staircase import group_staircases
    from edgeprune.plan.knapsack import solve_knapsack

    if solver not in SOLVERS:
        raise BudgetError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
    if start is not None:
        start.validate(graph)
    costs = make_costs([budget.kind, ranked_by], profile, graph.model_name, side)
    snap = profile is not None and constraints.snap
    stairs = group_staircases(graph, layers, profile) if snap else {}
    planner = Planner(graph, layers, costs, importance_for(model, graph, importance), constraints, stairs, start)
    if solver == "knapsack":
        solve_knapsack(planner, budget)
    else:
        planner.run(budget, ranked_by)
    return planner.result(budget, ranked_by if solver == "greedy" else budget.kind)
