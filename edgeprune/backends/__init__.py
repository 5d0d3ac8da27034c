"""Stage: runtime backends. One protocol (prepare -> run/sync), one registry, shared timing."""

from __future__ import annotations

from edgeprune.backends.base import (
    Backend,
    BackendError,
    LatencyStats,
    Runner,
    measure_interleaved,
    measure_latency,
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
    "unavailable_reason",
]
