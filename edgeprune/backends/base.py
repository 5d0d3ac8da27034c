"""The backend protocol, and timing that every backend shares."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from edgeprune.targets import Target


class BackendError(RuntimeError):
    """A backend that is missing, or that would not run the way the target asks."""


class Runner(Protocol):
    """A model prepared on a backend: call it, and wait for the device."""

    def run(self, x: np.ndarray) -> np.ndarray: ...

    def sync(self) -> None: ...


class Backend(Protocol):
    name: str

    def unavailable_reason(self, target: Target) -> str | None:
        """None when ``target`` can run on this machine, else why not."""

    def prepare(self, target: Target, onnx_path: str | None = None, module=None) -> Runner:
        """Build a runner from an ONNX file (or, for torch, a module)."""


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


def measure_latency(runner: Runner, x: np.ndarray, target: Target) -> LatencyStats:
    """Warm up, then time ``target.rounds`` rounds of ``target.repeats`` runs each (device-synchronized)."""
    return measure_interleaved({"model": runner}, x, target)["model"]


def measure_interleaved(runners: dict[str, Runner], x: np.ndarray, target: Target) -> dict[str, LatencyStats]:
    """Time several runners in alternating rounds: each round runs every runner ``target.repeats`` times in
    turn. A machine whose speed drifts while it measures (shared VMs do, by 20 % or more within minutes)
    then slows every runner alike, where timing one after the other would credit the drift to the model."""
    for runner in runners.values():
        for _ in range(target.warmup):
            runner.run(x)
        runner.sync()
    times: dict[str, list[float]] = {k: [] for k in runners}
    medians: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(target.rounds):
        for key, runner in runners.items():
            round_times = []
            for _ in range(target.repeats):
                t0 = time.perf_counter()
                runner.run(x)
                runner.sync()
                round_times.append((time.perf_counter() - t0) * 1e3)
            medians[key].append(statistics.median(round_times))
            times[key] += round_times
    return {k: _stats(times[k], medians[k]) for k in runners}


def _stats(times: list[float], medians: list[float]) -> LatencyStats:
    median = statistics.median(medians)
    return LatencyStats(
        median_ms=median,
        p90_ms=float(np.percentile(times, 90)),
        min_ms=min(times),
        round_medians_ms=medians,
        spread_pct=100.0 * _spread(medians) / median if median else 0.0,
        samples=len(times),
    )


def _spread(values: list[float]) -> float:
    # with many short rounds, one round hit by a neighbour's burst would dominate the range
    if len(values) < 4:
        return max(values) - min(values)
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q3 - q1
