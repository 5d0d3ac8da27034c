"""The one timing harness: models timed against each other in interleaved rounds, with paired ratios.

Everything that times models against each other goes through :func:`time_interleaved`: the backends'
``measure_latency``/``measure_interleaved``, profiling, in-network fits, measured budgets, validation, and
the device collector (``edgeprune.kit.collect``), which copies this file into every kit. So it imports
numpy and the standard library only: no torch, no other edgeprune module.

What the harness does not do is fix how a model runs: thread counts belong to the backends. onnxruntime
sessions are built with ``intra_op_num_threads`` set to the target's threads, one inter-op thread, and
``session.intra_op.allow_spinning=0`` (a spinning worker keeps burning a core after its run and slows
whatever is timed next).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


@dataclass
class LatencyStats:
    """Per-inference latency: the median of the per-round medians, with the spread across rounds."""

    median_ms: float
    p90_ms: float
    min_ms: float
    round_medians_ms: list[float]
    spread_pct: float  # interquartile range of the round medians (their range below 4 rounds), % of the median
    samples: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Ratio:
    """A runner's time over the reference's: the median of the per-round ratios, with a confidence interval
    (a seeded bootstrap of that median over rounds; with very few rounds it is about their range)."""

    median: float
    low: float
    high: float
    rounds: int

    def inverse(self) -> Ratio:
        """The reference's time over the runner's: a speedup when the runner is the faster one."""
        return Ratio(1.0 / self.median, 1.0 / self.high, 1.0 / self.low, self.rounds)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Timing:
    """What :func:`time_interleaved` measured: every runner's stats and, given a reference, each other runner's
    :class:`Ratio` to it."""

    stats: dict[str, LatencyStats]
    reference: str | None = None
    ratios: dict[str, Ratio] = field(default_factory=dict)

    def speedup(self, key: str) -> Ratio:
        """How many times faster ``key`` ran than the reference."""
        return self.ratios[key].inverse()

    def paired_ms(self) -> dict[str, float]:
        """Per runner, ms on the reference's scale: the reference's median times the runner's paired ratio (the
        reference keeps its median). Differences and ratios of these are the paired ones, not those of two
        medians that drift between rounds may have moved apart."""
        base = self.stats[self.reference].median_ms
        return {k: base if k == self.reference else base * self.ratios[k].median for k in self.stats}


def time_interleaved(
    runners: Mapping[str, Callable[[], object]],
    warmup: int,
    repeats: int,
    rounds: int,
    *,
    reference: str | None = None,
    alternate: bool = True,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Time ``runners`` (each a call that runs one inference and waits for the device) against each other.

    Each runner is first called ``warmup`` times. Then, in each of ``rounds`` rounds, every runner runs
    ``repeats`` times in turn: a machine whose speed drifts while it measures (shared VMs do, by 20 % and
    more within minutes) slows every runner alike, where timing one after the other would credit the drift
    to a model. With ``alternate``, every other round runs the runners in reverse order, so that running
    right after another model (its caches, its clock boost) favours none of them.

    ``reference``: a key of ``runners``; every other runner gets its :class:`Ratio` to it from the ratios of
    the two's medians round by round. ``seed`` makes the bootstrap interval repeatable; ``clock`` (seconds)
    is for tests.
    """
    if reference is not None and reference not in runners:
        raise KeyError(f"reference {reference!r} is not one of the runners {list(runners)}")
    if repeats < 1 or rounds < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1, rounds >= 1 and warmup >= 0, not {repeats}, {rounds}, {warmup}")
    for call in runners.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[list[float]]] = {k: [] for k in runners}
    order = list(runners)
    for r in range(rounds):
        for key in reversed(order) if alternate and r % 2 else order:
            call, round_ms = runners[key], []
            for _ in range(repeats):
                t0 = clock()
                call()
                round_ms.append((clock() - t0) * 1e3)
            times[key].append(round_ms)
    stats = {k: summarize_rounds(v) for k, v in times.items()}
    if reference is None:
        return Timing(stats)
    ref = stats[reference].round_medians_ms
    ratios = {k: summarize_ratios([m / b for m, b in zip(s.round_medians_ms, ref)], seed)
              for k, s in stats.items() if k != reference}  # fmt: skip
    return Timing(stats, reference, ratios)


def summarize_rounds(rounds: Sequence[Sequence[float]]) -> LatencyStats:
    """:class:`LatencyStats` of per-run times (ms) grouped by round."""
    medians = [statistics.median(r) for r in rounds]
    times = [t for r in rounds for t in r]
    median = statistics.median(medians)
    return LatencyStats(
        median_ms=median,
        p90_ms=float(np.percentile(times, 90)),
        min_ms=min(times),
        round_medians_ms=medians,
        spread_pct=100.0 * _spread(medians) / median if median else 0.0,
        samples=len(times),
    )


def summarize_ratios(ratios: Sequence[float], seed: int = 0, confidence: float = CONFIDENCE) -> Ratio:
    """The median of paired ratios (per round, or per pass of fresh sessions) and a percentile-bootstrap
    interval for it, repeatable for a given ``seed``."""
    values = np.asarray(ratios, dtype=float)
    if values.size == 0:
        raise ValueError("no ratios to summarize")
    rng = np.random.default_rng(seed)
    medians = np.median(values[rng.integers(0, values.size, (BOOTSTRAP_SAMPLES, values.size))], axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(medians, [tail, 100 - tail])
    return Ratio(float(np.median(values)), float(low), float(high), int(values.size))


def _spread(values: list[float]) -> float:
    # with many short rounds, one round hit by a neighbour's burst would dominate the range
    if len(values) < 4:
        return max(values) - min(values)
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q3 - q1
