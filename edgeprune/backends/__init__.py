"""Stage: runtime backends. One protocol (prepare -> run/sync), one registry, shared timing."""

from __future__ import annotations

from collections.abc import Sequence

from edgeprune.backends.base import (
    Backend,
    BackendError,
    LatencyStats,
    Runner,
    measure_interleaved,
    measure_latency,
    time_runners,
)
from edgeprune.backends.executorch import ExecutorchBackend
from edgeprune.backends.onnxruntime import OnnxRuntimeBackend
from edgeprune.backends.openvino import OpenVINOBackend
from edgeprune.backends.quantize import CalibrationError, QuantizationError
from edgeprune.backends.tensorrt import TensorRTBackend
from edgeprune.backends.torch import TorchBackend
from edgeprune.targets import Target

BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (OnnxRuntimeBackend(), TorchBackend(), TensorRTBackend(), OpenVINOBackend(), ExecutorchBackend())
}
# backends that build from the torch module itself; the others read its ONNX export
MODULE_BACKENDS = ("torch", "executorch")


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}")
    return BACKENDS[name]


def takes_module(target: Target) -> bool:
    """Whether ``target``'s backend builds from the torch module (else from its ONNX export)."""
    return target.backend in MODULE_BACKENDS


def prepare_runner(target: Target, source, input_shape: tuple[int, ...], calibration=None,
                   keep_fp32: Sequence[str] = ()) -> Runner:  # fmt: skip
    """A runner on ``target``'s backend: ``source`` is a module where :func:`takes_module`, else an ONNX file
    path, prepared for ``input_shape`` (the engine's, compiled model's or exported program's shape). An int8
    target quantizes the model, calibrated on ``calibration`` (images, N x C x H x W) or, without it, on random
    inputs for timing only (:mod:`edgeprune.backends.quantize`), leaving the nodes named in ``keep_fp32`` in
    float (the ONNX export's, or ExecuTorch: the exported program's; :mod:`edgeprune.backends.int8_layers`
    chooses them)."""
    model = {"module": source} if takes_module(target) else {"onnx_path": str(source)}
    extra = {} if calibration is None else {"calibration": calibration}
    if keep_fp32:
        extra["keep_fp32"] = list(keep_fp32)
    return get_backend(target.backend).prepare(target, input_shape=tuple(input_shape), **model, **extra)


def unavailable_reason(target: Target) -> str | None:
    """None when ``target`` can run on this machine, else the reason it cannot."""
    if target.platform == "jetson" and target.backend != "tensorrt":
        return "Jetson targets run through the kit"
    return get_backend(target.backend).unavailable_reason(target)


__all__ = [
    "BACKENDS",
    "MODULE_BACKENDS",
    "Backend",
    "BackendError",
    "CalibrationError",
    "LatencyStats",
    "QuantizationError",
    "Runner",
    "get_backend",
    "measure_interleaved",
    "measure_latency",
    "prepare_runner",
    "takes_module",
    "time_runners",
    "unavailable_reason",
]
