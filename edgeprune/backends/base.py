"""The backend protocol, and the timing harness (edgeprune.timing) applied to runners on a target."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.targets import Target
from edgeprune.timing import LatencyStats, Timing, time_interleaved


class BackendError(EdgepruneError, RuntimeError):
    """A backend that is missing, or that would not run the way the target asks."""


class Runner(Protocol):
    """A model prepared on a backend: call it, and wait for the device.

    A runner may also have ``to_input(x)``: the input converted once to what ``run`` takes (a tensor already
    on the GPU, say), so that timing repeats the inference and not the host-to-device copy.
    """

    def run(self, x: np.ndarray) -> np.ndarray: ...

    def sync(self) -> None: ...


class Backend(Protocol):
    """A runtime. Optional class attribute ``builds_apart = True``: the runtime keeps what it builds, so work
    that builds many models runs in fresh processes (:func:`edgeprune.backends.process.run_apart`). Optional
    method ``reload(target, runner) -> Runner``: a fresh session of what ``runner`` runs, without building it
    again, for a runtime whose sessions of one program, or spells of one session, run at different speeds
    (``validate`` then times more than one)."""

    name: str

    def unavailable_reason(self, target: Target) -> str | None:
        """None when ``target`` can run on this machine, else why not."""

    def prepare(self, target: Target, onnx_path: str | None = None, module=None, input_shape=None,
                calibration=None) -> Runner:  # fmt: skip
        """Build a runner from an ONNX file (or, for torch, a module), for ``input_shape``; int8 backends
        calibrate on ``calibration`` images (see :mod:`edgeprune.backends.quantize`)."""


def _call(runner: Runner, x: np.ndarray):
    x = runner.to_input(x) if hasattr(runner, "to_input") else x

    def call() -> None:
        runner.run(x)
        runner.sync()

    return call


def time_runners(runners: dict[str, Runner], x: np.ndarray, target: Target, reference: str | None = None) -> Timing:
    """:func:`edgeprune.timing.time_interleaved` of ``runners`` on ``x``, device-synchronized, with the
    target's warm-up, repeats and rounds."""
    calls = {k: _call(r, x) for k, r in runners.items()}
    return time_interleaved(calls, target.warmup, target.repeats, target.rounds, reference=reference)


def measure_latency(runner: Runner, x: np.ndarray, target: Target) -> LatencyStats:
    """Warm up, then time ``target.rounds`` rounds of ``target.repeats`` runs each (device-synchronized)."""
    return time_runners({"model": runner}, x, target).stats["model"]


def measure_interleaved(runners: dict[str, Runner], x: np.ndarray, target: Target) -> dict[str, LatencyStats]:
    """Each runner's stats, timed in interleaved rounds (see :func:`edgeprune.timing.time_interleaved`)."""
    return time_runners(runners, x, target).stats
