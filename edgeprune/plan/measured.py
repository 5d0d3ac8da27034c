"""Plan to a latency budget measured on the target: plan on the profile, time the plan's model beside the
unpruned one, move the predicted budget by what was measured, plan again.

The profile predicts random plans within a few per cent, but the planner does not pick random plans: it picks
the ones the profile says save most, which is where the profile's errors are one-sided (on cpu-ort, ResNet-56
plans that narrowed stages 2 and 3 together measured 9-18 % slower than a profile predicted), and a machine's
speed moves from day to day. When the target runs on this machine, measuring the chosen plan closes that loop.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch.nn as nn

from edgeprune.plan.planner import Budget, BudgetError, PlanResult
from edgeprune.targets import Target
from edgeprune.timing import summarize_ratios

DEFAULT_TOLERANCE = 0.02  # of the goal ratio; a plan this close to the goal is kept without another round
MEASURE_PASSES = 5  # fresh session pairs per measured plan, ratio = their median; one pair varies by ~2 % (SD)


@dataclass(frozen=True)
class MeasuredRound:
    """One plan of the search: the predicted budget it was planned to and what it measured."""

    planned: float  # predicted-latency budget, as a fraction of the unpruned prediction
    predicted: float  # the plan's predicted latency ratio
    measured: float  # its measured latency ratio to the unpruned model, timed beside it
    dense_ms: float
    ms: float


def next_planned(rounds: list[MeasuredRound], goal: float, floor: float) -> float:
    """The predicted budget to plan to next: interpolated between the nearest plans measured on either side of
    ``goal`` when there are such, else the latest plan's predicted saving scaled by the measured saving's
    shortfall; within [floor, 1]."""
    below = [r for r in rounds if r.measured <= goal]
    above = [r for r in rounds if r.measured > goal]
    if below and above:
        lo = max(below, key=lambda r: r.measured)
        hi = min(above, key=lambda r: r.measured)
        if hi.planned > lo.planned:
            t = (goal - lo.measured) / (hi.measured - lo.measured)
            return lo.planned + t * (hi.planned - lo.planned)
        # measured ratios out of order with the planned budgets (noise): split the difference
        return (lo.planned + hi.planned) / 2
    # one side only: assume the same share of the predicted saving shows up as measured saving
    last = rounds[-1]
    measured_saving = 1.0 - last.measured
    if measured_saving <= 1e-6:
        return floor if goal < last.measured else 1.0
    return min(1.0, max(floor, 1.0 - (1.0 - last.predicted) * (1.0 - goal) / measured_saving))


def plan_to_measured(
    budget: Budget,
    first: float,
    floor: float,
    plan_at: Callable[[float], PlanResult],
    measure: Callable[[PlanResult], tuple[float, float]],
    rounds: int,
    tolerance: float = DEFAULT_TOLERANCE,
    dense_predicted: float | None = None,
) -> tuple[PlanResult, MeasuredRound, list[MeasuredRound]]:
    """Search the predicted budget whose plan measures at ``budget`` on the target.

    Args:
        budget: a latency budget; relative (``0.7x``: of the unpruned model's measured latency) or in ms.
        first: the predicted budget to plan to first, as a fraction of the unpruned prediction.
        floor: the least predicted fraction the constraints allow (the reachable minimum).
        plan_at: plans to a predicted-latency budget given as a fraction of the unpruned prediction.
        measure: (unpruned ms, plan's ms) timed beside each other on the target.
        rounds: plans measured at most.
        tolerance: a plan within this fraction of the goal ratio ends the search.
        dense_predicted: the unpruned model's predicted latency (default: each plan's own ``dense``, which
            differs when the plan starts from a model an earlier step pruned).

    Returns:
        The least pruned plan that measured within the budget (up to ``tolerance`` above it), its round, and
        every round.

    Raises:
        BudgetError: no plan measured within the budget: at the reachable minimum, or after ``rounds`` plans.
    """
    if budget.kind != "latency":
        raise BudgetError(f"a measured budget must be a latency budget, not {budget}")
    if rounds < 1:
        raise BudgetError("a measured budget needs at least one round")
    history: list[MeasuredRound] = []
    best: tuple[PlanResult, MeasuredRound] | None = None
    floor *= 1 + 1e-9  # the floor as a budget, safe from rounding on its way back through the planner
    planned, goal = min(1.0, max(floor, first)), None
    for _ in range(rounds):
        result = plan_at(planned)
        dense_ms, ms = measure(result)
        if goal is None:  # an absolute budget becomes a ratio once the unpruned model is timed
            goal = budget.value if budget.relative else budget.value / dense_ms
        predicted = result.pruned["latency"] / (dense_predicted or result.dense["latency"])
        this = MeasuredRound(planned, predicted, ms / dense_ms, dense_ms, ms)
        history.append(this)
        if this.measured <= goal * (1 + tolerance) and (best is None or this.measured > best[1].measured):
            best = (result, this)
        if abs(this.measured - goal) <= goal * tolerance:
            break
        if this.measured > goal and planned <= floor + 1e-9:
            raise BudgetError(
                f"{budget} is not reachable as measured on the target: the smallest plan the constraints allow "
                f"(predicted {floor:.3f}x) measured {this.measured:.3f}x of the unpruned model "
                f"({ms:.3f} of {dense_ms:.3f} ms); relax the budget or the constraints"
            )
        following = next_planned(history, goal, floor)
        if any(abs(following - r.planned) < 1e-4 for r in history):
            break  # nothing new left to try between the plans measured
        planned = following
    if best is None:
        tried = ", ".join(f"{r.measured:.3f}x" for r in history)
        raise BudgetError(f"no plan measured within {budget} in {len(history)} rounds (measured {tried}): "
                          "allow more rounds or relax the budget")  # fmt: skip
    return best[0], best[1], history



def check_measurable(budget: Budget, target: Target) -> None:
    """Refuse measured rounds that cannot work, before anything is loaded or measured."""
    if budget.kind != "latency":
        raise BudgetError(f"measured rounds need a latency budget, not {budget}")
    check_runs_here(target)


def check_runs_here(target: Target) -> None:
    """Refuse timing plans on a target this machine cannot run, before anything is loaded."""
    from edgeprune.backends import unavailable_reason

    why = unavailable_reason(target)
    if why:
        raise BudgetError(f"timing plans needs the target on this machine, and {target.name} cannot run here: {why}")


def plan_measured(
    budget: Budget,
    rounds: int,
    target: Target,
    reference: nn.Module,
    shape: tuple[int, ...],
    origin: float,
    plan_ms: Callable[[float], PlanResult],
    shrink: Callable[[PlanResult], nn.Module],
    keep_fp32: Sequence[str] = (),
) -> tuple[PlanResult, MeasuredRound, list[MeasuredRound]]:
    """:func:`plan_to_measured` on ``target``: each plan's model timed beside ``reference``, the unpruned model.

    Args:
        origin: ``reference``'s predicted ms; budgets are planned as fractions of it.
        plan_ms: plans to a predicted latency in ms.
        shrink: the pruned model of a plan.
        keep_fp32: nodes both models leave in float on an int8 target (``latency.runs.timed_as_deployed``).
    """
    from edgeprune.latency import profiler

    floor = plan_ms(origin).minimum / origin  # a plan at the origin removes nothing: it only states the floor

    def measure(result: PlanResult) -> tuple[float, float]:
        passes = profiler.measure_variants(target, [reference, shrink(result)], shape, MEASURE_PASSES,
                                           desc="timing plan", keep_fp32=keep_fp32)  # fmt: skip
        pairs = [p[0] for p in passes]
        dense_ms = statistics.median(d for d, _ in pairs)
        # each pass's paired ratio, summarized over the passes of fresh sessions as the harness does rounds
        return dense_ms, dense_ms * summarize_ratios([ms / d for d, ms in pairs]).median

    first = budget.value if budget.relative else budget.value / origin
    return plan_to_measured(budget, first, floor, lambda f: plan_ms(f * origin), measure, rounds,
                            dense_predicted=origin)  # fmt: skip
