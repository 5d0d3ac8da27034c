"""Stage: runtime backends. One protocol (prepare -> run/sync), one registry, shared timing."""

from __future__ import annotations

from edgeprune.backends.base import (
    Backend,
    BackendError,
    LatencyStats,
    Runner,
    measure_interleaved,
    measure_latency,
    time_runners,
)
from edgeprune.backends.onnxruntime import OnnxRuntimeBackend
from edgeprune.backends.tensorrt import TensorRTBackend
from edgeprune.backends.torch import TorchBackend
from edgeprune.targets import Target

BACKENDS: dict[str, Backend] = {b.name: b for b in (OnnxRuntimeBackend(), TorchBackend(), TensorRTBackend())}


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}")
    return BACKENDS[name]


def prepare_runner(target: Target, source, input_shape: tuple[int, ...]) -> Runner:
    """A runner on ``target``'s backend: ``source`` is a module for torch, else an ONNX file path
    (TensorRT also gets the input shape it builds its engine for)."""
    if target.backend == "torch":
        return get_backend("torch").prepare(target, module=source)
    shape = {"input_shape": tuple(input_shape)} if target.backend == "tensorrt" else {}
    return get_backend(target.backend).prepare(target, onnx_path=str(source), **shape)


def unavailable_reason(target: Target) -> str | None:
    """None when ``target`` can run on this machine, else the reason it cannot."""
    if target.platform == "jetson" and target.backend != "tensorrt":
        return "Jetson targets run through the kit"
    return get_backend(target.backend).unavailable_reason(target)


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "LatencyStats",
    "Runner",
    "get_backend",
    "measure_interleaved",
    "measure_latency",
    "prepare_runner",
    "time_runners",
    "unavailable_reason",
]
