"""Choose a plan's shape: several plans for one MACs or parameter budget, the fastest kept, as timed on the
target (``--compare-plans``, the default on the profile's own device) or as the profile predicts them.

The latency model prices layers one at a time. Inside a network the runtime adds costs no per-layer table
sees: layout reorders around layers it cannot run in its blocked layout, narrow layers that leave the fast
kernels, per-node overheads that do not shrink with channels. Which shape wins therefore depends on the
model and the runtime: a greedy latency-ranked plan that narrows a few stages hard, a MACs-ranked one, or a
uniform cut that narrows everything a little. With ``--compare-plans`` (the target must run on this machine)
the planner makes one plan of each shape for the same budget, times them beside the unpruned model and keeps
the fastest.

Without timing, the profile still prices every shape. The greedy latency-ranked plan is not always the one it
prices lowest: on a GPU at batch 32 it was predicted at 0.95x of the unpruned speed where the uniform cut on
the channel blocking was predicted at 1.12x, and they ran at 0.94x and 1.13x (that greedy fault is fixed, see
``Planner.run``; others may remain). So the default keeps the shape the profile predicts fastest, the
planner's own unless another is predicted faster. Where the profile cannot price the model at all,
the uniform shape is kept: timed, it beat the MACs-ranked one on most models (docs/benchmarks/latency-vs-flops.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch.nn as nn

from edgeprune.plan.budget import BudgetError, PlanConstraints
from edgeprune.plan.planner import PlanResult
from edgeprune.targets import Target
from edgeprune.timing import Ratio, summarize_ratios

SHAPES = ("latency", "macs", "uniform")  # ranked by profiled ms saved, by MACs saved, one fraction everywhere
PASSES = 3  # fresh session pairs per plan; the ratio is their median
# when the fastest shape beat the planner's own by the median but not by the interval, the two are timed this many
# more times: over seven passes one lost pass still leaves the paired interval below 1, over three it cannot
EXTRA_PASSES = 4
# how much faster another shape must be priced to replace the planner's own: none. The planner's own plan is the
# one its prices flatter most (docs/benchmarks/latency-vs-flops.md, "The predictor on the plans the planner makes")
PREDICTED_MARGIN = 0.0
UNPRICED = "uniform"  # the shape kept when no shape is priced (the profile lacks the model's layers)


@dataclass(frozen=True)
class Compared:
    """One shape's plan as timed beside the unpruned model."""

    shape: str
    same_as: str | None  # an earlier shape that gave the identical plan (timed once)
    macs: float  # the plan's MACs over the unpruned model's
    predicted: float | None  # predicted latency ratio (None without a profile)
    measured: float  # measured latency ratio to the unpruned model: median over the passes
    low: float  # its 95 % interval
    high: float


def plan_shapes(plan_shape: Callable[[str], PlanResult], shapes: tuple[str, ...] = SHAPES
                ) -> tuple[dict[str, PlanResult], dict[str, str]]:  # fmt: skip
    """Each shape's plan, and why a shape has none (its budget unreachable for that shape)."""
    plans, skipped = {}, {}
    for shape in shapes:
        try:
            plans[shape] = plan_shape(shape)
        except BudgetError as exc:
            skipped[shape] = str(exc)
    if not plans:
        by_reason: dict[str, list[str]] = {}  # shapes refused alike (the same floor) are named together, once
        for shape, why in skipped.items():
            by_reason.setdefault(why, []).append(shape)
        raise BudgetError("no plan shape reaches the budget: "
                          + "; ".join(f"{', '.join(ks)}: {why}" for why, ks in by_reason.items()))  # fmt: skip
    return plans, skipped


def choose_fastest(
    plans: dict[str, PlanResult],
    target: Target,
    reference: nn.Module,
    shape: tuple[int, ...],
    shrink: Callable[[PlanResult], nn.Module],
    passes: int = PASSES,
    extra_passes: int = EXTRA_PASSES,
    keep_fp32: Sequence[str] = (),
) -> tuple[str, list[Compared]]:
    """The shape kept on ``target``, and every shape's timing. Each plan is timed beside ``reference`` in
    ``passes`` fresh session pairs; identical plans are timed once. The first shape (the planner's own) is
    kept unless the fastest one is faster by the paired interval over the passes: a win inside the timing
    noise is no reason to switch. When the fastest won by the median but not by the interval, the two are
    timed ``extra_passes`` more times and decided on all passes together (the rows keep the first passes).
    ``keep_fp32``: nodes every model leaves in float on an int8 target (``latency.runs.timed_as_deployed``)."""
    from edgeprune.latency import profiler

    if passes < 1:
        raise BudgetError("comparing plans needs at least one timing pass")
    first_of: dict[str, str] = {}
    unique: list[str] = []
    for label, result in plans.items():
        twin = next((u for u in unique if plans[u].plan.keep == result.plan.keep), None)
        if twin is None:
            unique.append(label)
        first_of[label] = twin or label
    shrunk = [shrink(plans[u]) for u in unique]
    timed = profiler.measure_variants(target, [reference, *shrunk], shape, passes, desc="timing plan shapes",
                                      keep_fp32=keep_fp32)  # fmt: skip
    ratio = {u: summarize_ratios([p[j][1] / p[j][0] for p in timed]) for j, u in enumerate(unique)}
    rows = []
    for label, result in plans.items():
        r = ratio[first_of[label]]
        predicted = result.pruned["latency"] / result.dense["latency"] if "latency" in result.dense else None
        rows.append(Compared(label, None if first_of[label] == label else first_of[label],
                             result.pruned["macs"] / result.dense["macs"], predicted, r.median, r.low, r.high))
    fastest = min(unique, key=lambda u: ratio[u].median)
    j = unique.index(fastest)
    over_first = _paired(timed, 0, j)
    if j and over_first.median < 1.0 <= over_first.high and extra_passes > 0:
        more = profiler.measure_variants(target, [reference, shrunk[0], shrunk[j]], shape, extra_passes,
                                         desc="timing the two fastest shapes again", keep_fp32=keep_fp32)  # fmt: skip
        over_first = _paired(timed, 0, j, more)
    return (fastest if over_first.high < 1.0 else unique[0]), rows


def _paired(timed: list[list[tuple]], a: int, b: int, more: list[list[tuple]] | tuple = ()) -> Ratio:
    """Variant ``b``'s ratio to variant ``a`` per pass (each over the dense session timed beside it), summarized;
    ``more``: further passes of just those two (as variants 0 and 1)."""
    ratios = [(p[b][1] / p[b][0]) / (p[a][1] / p[a][0]) for p in timed]
    return summarize_ratios(ratios + [(p[1][1] / p[1][0]) / (p[0][1] / p[0][0]) for p in more])


def weighs_shapes(solver: str, constraints: PlanConstraints, steps: int = 1) -> bool:
    """Whether a MACs or parameter budget ranked by default weighs the plan shapes (:func:`choose_predicted`):
    for a one-step channels-only greedy plan. The knapsack ignores the ranking, and the uniform shape removes
    no branch."""
    return solver == "greedy" and not constraints.remove_branches and steps == 1


def choose_predicted(plans: dict[str, PlanResult], margin: float = PREDICTED_MARGIN) -> tuple[str, list[dict]]:
    """The shape kept by prediction, and every shape's MACs and predicted latency (ratios to the unpruned model).
    The first shape (the planner's own) is kept unless another is predicted more than ``margin`` faster; with no
    shape priced, :data:`UNPRICED` where it has a plan."""
    rows = [{"shape": k, "macs": r.pruned["macs"] / r.dense["macs"],
             "predicted": r.pruned["latency"] / r.dense["latency"] if "latency" in r.dense else None}
            for k, r in plans.items()]  # fmt: skip
    priced = [r for r in rows if r["predicted"] is not None]
    first = rows[0]
    if not priced:
        return (UNPRICED if UNPRICED in plans else first["shape"]), rows
    if first["predicted"] is None:
        return first["shape"], rows
    best = min(priced, key=lambda r: r["predicted"])
    return (best["shape"] if best["predicted"] < (1 - margin) * first["predicted"] else first["shape"]), rows


def compared_summary(chosen: str, rows: list[Compared] | list[dict], skipped: dict[str, str]) -> dict:
    """What ``plan_result.json`` records of the comparison: timed rows (:class:`Compared`) or predicted ones."""
    timed = bool(rows) and isinstance(rows[0], Compared)
    summary = {"chosen": chosen, "by": "measured" if timed else "predicted",
               "plans": [asdict(r) if timed else r for r in rows], "skipped": skipped}  # fmt: skip
    if timed:  # a plan can meet its MACs budget and still run slower (in-network costs no table sees)
        summary["faster_than_unpruned"] = next(r.measured for r in rows if r.shape == chosen) < 1.0
    return summary
