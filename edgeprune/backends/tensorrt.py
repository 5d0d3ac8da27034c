"""TensorRT backend: ONNX parser -> engine (fp16/int8 flags, timing cache) -> timed execution.

Written against the TensorRT 10 Python API and imported lazily. TensorRT cannot be installed on
edgeprune's own CI machines, so this module is exercised only where ``pytest -m trt`` finds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeprune.backends.base import BackendError
from edgeprune.targets import Target

INSTALL_HINT = "pip install -e '.[trt]' on a machine with an NVIDIA GPU"


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError(f"tensorrt is not installed ({INSTALL_HINT})") from exc
    return trt


def build_engine(target: Target, onnx_path: str, input_shape: tuple[int, ...], timing_cache: Path | None = None):
    """Parse ``onnx_path`` and build a serialized engine for ``input_shape``; returns (trt, bytes)."""
    trt = _import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if target.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif target.precision == "int8":
        raise BackendError("int8 engines need a calibrator, which edgeprune does not provide yet")
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.exists() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    profile.set_shape(name, input_shape, input_shape, input_shape)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine for {onnx_path}")
    if timing_cache is not None:
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return trt, bytes(serialized)


class TensorRTRunner:
    def __init__(self, trt, serialized: bytes, input_shape: tuple[int, ...]) -> None:
        import torch

        self.torch = torch
        self.engine_bytes = len(serialized)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(serialized)
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.buffers, self.input_name, self.output_name = {}, None, None
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.context.set_input_shape(name, input_shape)
                self.input_name = name
            else:
                self.output_name = name
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = torch.from_numpy(np.zeros(1, trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
            self.buffers[name] = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())

    @property
    def device_memory_bytes(self) -> int:
        return int(getattr(self.engine, "device_memory_size_v2", self.engine.device_memory_size))

    def run(self, x: np.ndarray) -> np.ndarray:
        self.buffers[self.input_name].copy_(self.torch.from_numpy(x))
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return self.buffers[self.output_name].float().cpu().numpy()

    def sync(self) -> None:
        self.stream.synchronize()

    def layer_times(self, x: np.ndarray, runs: int = 10) -> dict[str, float]:
        """Mean milliseconds per engine layer, from TensorRT's IProfiler."""
        import tensorrt as trt

        totals: dict[str, float] = {}

        class _Profiler(trt.IProfiler):
            def report_layer_time(self, layer_name: str, ms: float) -> None:
                totals[layer_name] = totals.get(layer_name, 0.0) + ms

        self.context.profiler = _Profiler()
        for _ in range(runs):
            self.run(x)
        self.context.profiler = None
        return {k: v / runs for k, v in totals.items()}


class TensorRTBackend:
    name = "tensorrt"

    def unavailable_reason(self, target: Target) -> str | None:
        try:
            _import_tensorrt()
        except BackendError as exc:
            return str(exc)
        import torch

        if not torch.cuda.is_available():
            return "no CUDA device"
        if target.platform == "jetson" and not Path("/etc/nv_tegra_release").exists():
            return "this target profiles a Jetson: run the kit on the device"
        return None

    def prepare(self, target: Target, onnx_path: str | None = None, module=None, input_shape=None) -> TensorRTRunner:
        if onnx_path is None or input_shape is None:
            raise BackendError("the tensorrt backend builds from an ONNX file and an input shape")
        trt, serialized = build_engine(target, onnx_path, tuple(input_shape))
        return TensorRTRunner(trt, serialized, tuple(input_shape))
