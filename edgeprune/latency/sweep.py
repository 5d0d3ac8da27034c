"""Width sweeps that show the runtime, not the neighbours.

Timed in increasing order, a burst of interference from another process lands on a contiguous run of widths
and looks exactly like a step of the staircase; the planner then obeys it. So a sweep times every point
twice, each pass in its own seeded shuffled order (a burst lands on scattered widths, and not on the same
ones twice), and a third time where the two passes disagree; a point keeps the median of its timings. A real
step is the same in every pass and stays; a burst is outvoted.

Whole-network runs (a calibration's, a check's) are settled the same way, each beside the dense model:
:func:`settle_runs`.

A burst can still hit one width twice out of three. Such a width stands above its neighbours (on the grid's
row and column, the scan), where a real step stays up on one side. So a width more than the tolerance above
its neighbours is timed again, in rounds beside those neighbours, and takes the least of a neighbour's ms times
the median ratio of its time to that neighbour's. A slow spell of the machine that outlasts a round slows the
width and its neighbours alike and cancels in the ratio (timed alone, three more times in a row, a width can
land in one spell each time: docs/benchmarks/targets.md, "Spikes timed beside their neighbours"). A slow path
of the runtime at that width stays, a twice-unlucky width comes down. Neighbouring widths a spell hit alike
hide each other; once the highest has come down, the next stands out, so the search runs again on the settled
values (up to :data:`SPIKE_PASSES` times), each width settled once.
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
    settled: dict[Point, float] = field(default_factory=dict)  # the spikes' ms, from the rounds beside them

    @property
    def spikes(self) -> list[Point]:
        """Points that stood above their neighbours and were timed again beside them."""
        return list(self.settled)

    def ms(self, p: Point) -> float:
        """The median of the point's timings; for a spike, what the rounds beside its neighbours settled."""
        if p in self.settled:
            return self.settled[p]
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


SPIKE_ROUNDS = 3  # rounds in which a spike and its neighbours are timed back to back
SPIKE_PASSES = 3  # searches for spikes, each on the values the ones before settled


def line_neighbours(lines: Sequence[Sequence[Point]]) -> dict[Point, list[Point]]:
    """Each point's neighbours on the lines through it: the points before and after it on each."""
    out: dict[Point, dict[Point, None]] = {}
    for line in lines:
        for i, p in enumerate(line):
            near = out.setdefault(p, {})
            near.update(dict.fromkeys(line[j] for j in (i - 1, i + 1) if 0 <= j < len(line) and line[j] != p))
    return {p: list(near) for p, near in out.items() if near}


def find_spikes(ms: Callable[[Point], float], lines: Sequence[Sequence[Point]], tolerance: float
                ) -> dict[Point, list[Point]]:  # fmt: skip
    """Points more than ``tolerance`` above their neighbours on ``lines`` (a grid's rows and columns, the
    scan), with those neighbours: above the median of three or four, above each of one or two. A real step
    stays up on one side of a line and along the line across it; a burst stands alone, or beside one
    neighbour it also hit."""

    def reference(near: list[Point]) -> float:
        return statistics.median(ms(q) for q in near) if len(near) > 2 else max(ms(q) for q in near)

    return {p: near for p, near in line_neighbours(lines).items() if ms(p) > (1 + tolerance) * reference(near)}


def settle_spikes(spiked: dict[Point, list[Point]], ms: Callable[[Point], float],
                  measure: Callable[[int, int], tuple], rng: random.Random,
                  rounds: int = SPIKE_ROUNDS) -> dict[Point, float]:  # fmt: skip
    """Each spike's ms from ``rounds`` rounds in which it and its neighbours are timed back to back, in a
    shuffled order. Each neighbour gives an estimate, its ``ms`` times the median over rounds of the spike's
    time over its own, and the spike takes the least: what a round's machine does to them all cancels in the
    ratio, and timing noise only adds time, so the least estimate rests on the least disturbed neighbour (a
    neighbour that is itself a spike would carry its excess over)."""
    ratios: dict[Point, dict[Point, list[float]]] = {p: {q: [] for q in near} for p, near in spiked.items()}
    for _ in range(rounds):
        for p in rng.sample(list(spiked), len(spiked)):
            group = rng.sample([p, *spiked[p]], len(spiked[p]) + 1)
            t = {q: measure(*q)[0] for q in group}
            for q in spiked[p]:
                ratios[p][q].append(t[p] / t[q])
    return {p: min(ms(q) * statistics.median(r) for q, r in per.items()) for p, per in ratios.items()}


def settle_all_spikes(ms: Callable[[Point], float], lines: Sequence[Sequence[Point]], tolerance: float,
                      measure: Callable[[int, int], tuple], rng: random.Random,
                      passes: int = SPIKE_PASSES) -> dict[Point, float]:  # fmt: skip
    """Spikes found (:func:`find_spikes`) and settled (:func:`settle_spikes`), then found again on the settled
    values, up to ``passes`` times: a run of neighbouring widths hit alike shows one spike at a time. A width
    settled once is not timed again (it was judged beside its neighbours; a slow path of the runtime stays up
    and would be found in every pass)."""
    settled: dict[Point, float] = {}

    def now(p: Point) -> float:
        return settled[p] if p in settled else ms(p)

    for _ in range(passes):
        spiked = {p: near for p, near in find_spikes(now, lines, tolerance).items() if p not in settled}
        if not spiked:
            break
        settled.update(settle_spikes(spiked, now, measure, rng))
    return settled


def run_sweep(points: Sequence[Point], measure: Callable[[int, int], tuple], seed: int = 0,
              tolerance: float = 0.1, passes: int = 2, lines: Sequence[Sequence[Point]] = ()) -> Sweep:  # fmt: skip
    """Time ``points`` with ``measure(cin, cout) -> (ms, spread)`` in ``passes`` shuffled passes, then once
    more each point whose passes are further apart than ``tolerance`` (relative), also in shuffled order;
    then each point that stands above its neighbours on ``lines`` (ordered runs of ``points`` along which the
    staircase is read) in :data:`SPIKE_ROUNDS` rounds beside them (:func:`settle_all_spikes`)."""
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
        sweep.settled = settle_all_spikes(sweep.ms, lines, tolerance, measure, rng)
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
