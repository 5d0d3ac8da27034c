"""Width sweeps that show the runtime, not the neighbours.

Timed in increasing order, a burst of interference from another process lands on a contiguous run of widths
and looks exactly like a step of the staircase; the planner then obeys it. So a sweep times its points in a
seeded shuffled order (a burst scatters over unrelated widths), then re-times every point that stands off the
median of its neighbours along a line of the table, in a new shuffled order, and keeps the median of all its
timings. A real step is re-timed and stays; a burst is outvoted.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Point = tuple[int, int]  # (cin, cout)


@dataclass
class Sweep:
    """Every timing of every point, in the order they were taken (the first is the shuffled pass's)."""

    timings: dict[Point, list[tuple[float, float]]] = field(default_factory=dict)
    remeasured: list[Point] = field(default_factory=list)  # in the order they were re-timed (repeats included)

    def ms(self, p: Point) -> float:
        """The median of the point's timings."""
        return statistics.median(t[0] for t in self.timings[p])

    def spread(self, p: Point) -> float:
        """The spread of the point's timing that ``ms`` comes from (the largest one when re-timed)."""
        return max(t[1] for t in self.timings[p])

    def first_ms(self, p: Point) -> float:
        """The shuffled pass's timing alone: what the sweep would have said without re-timing."""
        return self.timings[p][0][0]


def off_neighbours(values: Sequence[float], tolerance: float, window: int = 2) -> list[int]:
    """Indices of ``values`` (a line of a table, in width order) further than ``tolerance`` (relative) from the
    median of up to ``window`` neighbours on each side, itself left out."""
    out = []
    for i, v in enumerate(values):
        around = [values[j] for j in range(max(0, i - window), min(len(values), i + window + 1)) if j != i]
        if around:
            ref = statistics.median(around)
            if ref > 0 and abs(v - ref) > tolerance * ref:
                out.append(i)
    return out


def run_sweep(points: Sequence[Point], lines: Sequence[Sequence[Point]], measure: Callable[[int, int], tuple],
              seed: int = 0, tolerance: float = 0.1, repeats: int = 2) -> Sweep:  # fmt: skip
    """Time ``points`` with ``measure(cin, cout) -> (ms, spread)`` in shuffled order, then up to ``repeats``
    rounds of re-timing (twice more, once per point) the points that stand off their neighbours along any of
    ``lines`` (ordered runs of points, e.g. a row of the grid or the staircase scan); a later round takes the
    points that stand off only once their neighbours were corrected."""
    rng = random.Random(seed)
    sweep = Sweep({p: [] for p in points})
    order = list(dict.fromkeys(points))
    rng.shuffle(order)
    for p in order:
        sweep.timings[p].append(tuple(measure(*p)))
    for _ in range(repeats):
        flagged = {line[i] for line in lines for i in off_neighbours([sweep.ms(p) for p in line], tolerance)}
        flagged -= set(sweep.remeasured)  # three timings decided it: a step that stays is a step
        if not flagged:
            break
        again = sorted(flagged) * 2  # two more timings each: the median of three decides
        rng.shuffle(again)
        for p in again:
            sweep.timings[p].append(tuple(measure(*p)))
            sweep.remeasured.append(p)
    return sweep
