"""Knapsack solver (HALP-style): keep the most importance whose cost fits the budget.

A multiple-choice knapsack: every group picks one width; its value is the importance it keeps and its
weight the cost of the layers it touches. A layer touched by two groups (input from one, output from the
other) is shared between them, priced with the other group at its width from the previous round; a few
rounds, starting from the greedy solution, let the widths settle. The exact total is then checked, and
greedy steps repair any overshoot.
"""

from __future__ import annotations

import copy

import numpy as np

from edgeprune.plan.planner import Budget, Planner

ROUNDS = 4
BUCKETS = 2000


def solve_knapsack(planner: Planner, budget: Budget) -> None:
    """Choose every group's width by dynamic programming, then apply it to ``planner``."""
    kind = budget.kind
    cost = planner.costs[kind]
    limit = planner.check_reachable(budget)
    offset, slope = cost.total(0.0), cost.total(1.0) - cost.total(0.0)
    sum_limit = (limit - offset) / slope  # budget in layer-sum space (the total is affine in the sum)
    groups = planner.groups
    options = [[s.width, *planner.candidate_widths(s, kind)] for s in groups]  # option 0: width at start
    deltas = [[s.deltas(s.order[: s.width - w]) for w in opts] for s, opts in zip(groups, options)]
    owners = np.zeros(len(planner.layers), dtype=np.int64)
    for s in groups:
        for ids, _ in s.targets:
            owners[ids] += 1
    # price the first round at the greedy solution: priced at the start widths, every group would pay
    # for neighbours that the others are about to shrink, and no choice would fit
    probe = copy.deepcopy(planner)
    probe.run(budget, kind)
    chosen = [min(range(len(opts)), key=lambda k: abs(opts[k] - p.width)) for opts, p in zip(options, probe.groups)]
    for _ in range(ROUNDS):
        cin, cout = planner.cin.copy(), planner.cout.copy()
        for d, c in zip(deltas, chosen):
            for i, (a, b) in d[c].items():
                cin[i] -= a
                cout[i] -= b
        untouched = sum(cost.layer(x, int(cin[i]), int(cout[i])) for i, x in enumerate(planner.layers) if not owners[i])
        weights, values = [], []
        for s, opts, d, c in zip(groups, options, deltas, chosen):
            layer_ids = sorted({i for ids, _ in s.targets for i in ids})
            row_w, row_v = [], []
            for k in range(len(opts)):
                w = 0.0
                for i in layer_ids:
                    a = int(cin[i]) + d[c].get(i, (0, 0))[0] - d[k].get(i, (0, 0))[0]
                    b = int(cout[i]) + d[c].get(i, (0, 0))[1] - d[k].get(i, (0, 0))[1]
                    w += cost.layer(planner.layers[i], a, b) / owners[i]
                row_w.append(w)
                row_v.append(-s.importance(s.order[: s.width - opts[k]]))
            weights.append(row_w)
            values.append(row_v)
        new = _multiple_choice(weights, values, sum_limit - untouched)
        if new is None or new == chosen:
            break
        chosen = new
    for s, opts, c in zip(groups, options, chosen):
        units = s.order[: s.width - opts[c]]
        if units:
            planner.apply(s, units, s.deltas(units))
    if planner.total(kind) > limit:  # the shared-layer pricing was optimistic: greedy steps close the gap
        planner.run(budget, kind)


def _multiple_choice(weights: list[list[float]], values: list[list[float]], capacity: float) -> list[int] | None:
    """Max total value picking one option per row with total weight <= capacity (weights rounded up)."""
    if capacity <= 0:
        return None
    res = capacity / BUCKETS
    best = np.zeros(BUCKETS + 1)  # best value with total weight <= b buckets, before any row
    picks = []
    for w_row, v_row in zip(weights, values):
        cells = np.ceil(np.asarray(w_row) / res).astype(np.int64)
        new = np.full(BUCKETS + 1, -np.inf)
        pick = np.zeros(BUCKETS + 1, dtype=np.int64)
        for k, (c, v) in enumerate(zip(cells.tolist(), v_row)):
            if c > BUCKETS:
                continue
            shifted = np.full(BUCKETS + 1, -np.inf)
            shifted[c:] = best[: BUCKETS + 1 - c] + v
            better = shifted > new
            new[better], pick[better] = shifted[better], k
        best = new
        picks.append(pick)
    if not np.isfinite(best[BUCKETS]):
        return None
    chosen, b = [], BUCKETS
    for w_row, pick in zip(reversed(weights), reversed(picks)):
        k = int(pick[b])
        chosen.append(k)
        b -= int(np.ceil(w_row[k] / res))
    return chosen[::-1]
