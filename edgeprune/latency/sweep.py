"""Width sweeps that show the runtime, not the neighbours.

Timed in increasing order, a burst of interference from another process lands on a contiguous run of widths
and looks exactly like a step of the staircase; the planner then obeys it. So a sweep times every point
twice, each pass in its own seeded shuffled order (a burst lands on scattered widths, and not on the same
ones twice), and a third time where the two passes disagree; a point keeps the median of its timings. A real
step is the same in every pass and stays; a burst is outvoted.

Whole-network runs (a calibration's, a check's) are settled the same way, each beside the dense model:
:func:`settle_runs`.

A burst can still hit one width twice out of three. Such a width stands above both its neighbours on the
staircase, where a real step stays up on one side. So a width more than the tolerance above both neighbours
is timed three times more, and keeps the median of all its timings: a slow path of the runtime at that width
stays, a twice-unlucky width comes down.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Point = tuple[int, int]  # (cin, cout)


@dataclass
class Sweep:
    """Every timing of every point, in the order they were taken (one per pass, then the deciding one)."""

    timings: dict[Point, list[tuple[float, float]]] = field(default_factory=dict)
    retimed: list[Point] = field(default_factory=list)  # points whose passes disagreed: timed once more
    spikes: list[Point] = field(default_factory=list)  # points above both neighbours: timed SPIKE_RETIMES more

    def ms(self, p: Point) -> float:
        """The median of the point's timings."""
        return statistics.median(t[0] for t in self.timings[p])

    def spread(self, p: Point) -> float:
        """The largest spread among the point's timings."""
        return max(t[1] for t in self.timings[p])

    def first_ms(self, p: Point) -> float:
        """The first pass's timing alone: what a single sweep would have said."""
        return self.timings[p][0][0]


def disagree(a: float, b: float, tolerance: float) -> bool:
    """Whether two timings of one point differ by more than ``tolerance`` of the smaller."""
    return abs(a - b) > tolerance * min(a, b)


SPIKE_RETIMES = 3  # after two or three earlier timings, two of them slow: the median of all is a fresh one


def spikes(sweep: Sweep, lines: Sequence[Sequence[Point]], tolerance: float) -> list[Point]:
    """Points more than ``tolerance`` above both neighbours on some line (a row of the grid, the scan)."""
    out = []
    for line in lines:
        for left, p, right in zip(line, line[1:], line[2:]):
            if sweep.ms(p) > (1 + tolerance) * max(sweep.ms(left), sweep.ms(right)):
                out.append(p)
    return list(dict.fromkeys(out))


def run_sweep(points: Sequence[Point], measure: Callable[[int, int], tuple], seed: int = 0,
              tolerance: float = 0.1, passes: int = 2, lines: Sequence[Sequence[Point]] = ()) -> Sweep:  # fmt: skip
    """Time ``points`` with ``measure(cin, cout) -> (ms, spread)`` in ``passes`` shuffled passes, then once
    more each point whose passes are further apart than ``tolerance`` (relative), also in shuffled order;
    then :data:`SPIKE_RETIMES` more times each point that stands above both its neighbours on one of
    ``lines`` (ordered runs of ``points`` along which the staircase is read)."""
    rng = random.Random(seed)
    order = list(dict.fromkeys(points))
    sweep = Sweep({p: [] for p in order})

    def time_all(todo: list[Point]) -> None:
        todo = list(todo)
        rng.shuffle(todo)
        for p in todo:
            sweep.timings[p].append(tuple(measure(*p)))

    for _ in range(passes):
        time_all(order)
    if passes > 1:
        sweep.retimed = [p for p in order if disagree(min(t[0] for t in sweep.timings[p]),
                                                      max(t[0] for t in sweep.timings[p]), tolerance)]  # fmt: skip
        time_all(sweep.retimed)
    if passes > 1 and lines:
        sweep.spikes = spikes(sweep, lines, tolerance)
        for _ in range(SPIKE_RETIMES):
            time_all(sweep.spikes)
    return sweep


Pairs = list[tuple[float, float]]  # (dense ms, ms) of one run, one per timing


def settle_runs(measure: Callable[[list, int], list[Pairs]], models: list, passes: int, tolerance: float
                ) -> list[Pairs]:  # fmt: skip
    """Each of ``models[1:]`` timed beside ``models[0]`` by ``measure(models, passes)`` (per pass, each run's
    (dense ms, ms)), and once more each run whose passes' ratios are further apart than ``tolerance``. Per run,
    its pairs: one per pass, then the deciding one."""
    runs = [list(col) for col in zip(*measure(models, passes))]
    ratios = [[ms / dense for dense, ms in pairs] for pairs in runs]
    split = [j for j, r in enumerate(ratios) if disagree(min(r), max(r), tolerance)]
    if split:
        for j, pair in zip(split, measure([models[0]] + [models[j + 1] for j in split], 1)[0]):
            runs[j].append(pair)
    return runs
