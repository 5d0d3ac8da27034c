"""OpenVINO backend: the runtime reads the ONNX export and compiles it for the CPU; int8 through NNCF
post-training quantization of the OpenVINO model. Both are imported on first use (the ``openvino`` extra)."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeprune.atomic import atomic_path
from edgeprune.backends.base import BackendError
from edgeprune.backends.memory import probe_memory
from edgeprune.backends.quantize import (
    QuantizationError,
    artifact_path,
    calibration_batches,
    calibration_for,
    onnx_input,
)
from edgeprune.backends.signal_stack import kept_signal_stack
from edgeprune.errors import EdgepruneError
from edgeprune.targets import Target

INSTALL_HINT = "pip install 'edgeprune[openvino]'"
DEVICE = "CPU"
# Layers that carry the MACs: the ones whose runtime precision shows whether the model ran in int8.
_MAC_LAYERS = ("Convolution", "FullyConnected", "MatMul", "Deconvolution")
_INT8 = ("u8", "i8")


def _import(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendError(f"{module} is not installed ({INSTALL_HINT})") from exc


def compile_config(target: Target) -> dict:
    """The CPU plugin's settings for ``target``: its thread count, one stream for latency, and fp32 for every
    layer that is not quantized (OpenVINO would otherwise run them in bf16 on CPUs that have it)."""
    return {"INFERENCE_NUM_THREADS": target.threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}


def runtime_precisions(compiled, skip: set[str] = frozenset()) -> dict[str, set[str]]:
    """Per layer type of the compiled (runtime) graph, the precisions its layers execute in; layers made from an
    op named in ``skip`` (a friendly name of the model compiled) are left out."""
    out: dict[str, set[str]] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if skip and skip & set(info["originalLayersNames"].astype(str).split(",")):
            continue
        out.setdefault(info["layerType"].astype(str), set()).add(info["runtimePrecision"].astype(str))
    return out


def grouped_convolutions(model) -> set[str]:
    """Friendly names of the grouped (depthwise) convolutions of an OpenVINO model. The CPU plugin runs them in
    f32 even with NNCF's quantizers on their inputs (MobileNet-V2: all 17 of them, every other conv in u8), so
    they say nothing about whether the model runs in int8."""
    return {op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "GroupConvolution"}


def check_compiled(compiled, target: Target, grouped: set[str] = frozenset()) -> None:
    """Refuse a compiled model that does not run as ``target`` asks: on another device, with other threads, or
    (int8) with no MAC layer in int8 / (fp32) with one in a lower precision. ``grouped``: names of grouped
    convolutions (:func:`grouped_convolutions`), left out of the int8 check; a model of nothing else (a
    depthwise layer's micro-model) runs them as the runtime does inside a network."""
    devices = list(compiled.get_property("EXECUTION_DEVICES"))
    if devices != [DEVICE]:
        raise BackendError(f"requested OpenVINO on {DEVICE} but the compiled model runs on {devices}")
    threads = int(compiled.get_property("INFERENCE_NUM_THREADS"))
    if threads != target.threads:
        raise BackendError(f"requested {target.threads} inference threads, OpenVINO compiled for {threads}")
    # int8: grouped convs say nothing (see grouped_convolutions); fp32: every MAC layer must run in f32
    skip = grouped if target.precision == "int8" else frozenset()
    mac = {p for kind, ps in runtime_precisions(compiled, skip).items() if kind in _MAC_LAYERS for p in ps}
    if target.precision == "int8" and mac and not mac & set(_INT8):
        raise QuantizationError(f"OpenVINO runs no convolution or matmul in int8 (they run in {sorted(mac)})")
    if target.precision == "fp32" and mac - {"f32"}:
        raise BackendError(f"fp32 target, but OpenVINO runs convolutions/matmuls in {sorted(mac)}")


def compile_for(target: Target, model_path: str | Path, input_shape: tuple[int, ...] | None = None,
                profiling: bool = False):  # fmt: skip
    """``model_path`` (ONNX or OpenVINO IR) read, fixed to ``input_shape`` (the shape timed), compiled for the
    CPU with :func:`compile_config` (``profiling``: with its per-node counters on) and checked
    (:func:`check_compiled`)."""
    ov = _import("openvino")
    core = ov.Core()
    model = core.read_model(str(model_path))
    if input_shape is not None:
        model.reshape({model.inputs[0]: list(input_shape)})
    config = {**compile_config(target), **({"PERF_COUNT": "YES"} if profiling else {})}
    try:
        with kept_signal_stack():  # OpenVINO can leave it on memory it frees (backends/signal_stack.py)
            compiled = core.compile_model(model, DEVICE, config)
    except RuntimeError as exc:
        raise BackendError(f"OpenVINO could not compile {Path(model_path).name}: {exc}"[:500]) from exc
    check_compiled(compiled, target, grouped_convolutions(model))
    return compiled


def profile_nodes(target: Target, model_path: str | Path, x: np.ndarray, runs: int) -> list[tuple[str, str, float]]:
    """(node name, node type, ms per inference) of each node of the compiled ``model_path`` that executed, from
    OpenVINO's own per-node counters over ``runs`` inferences (after one unprofiled warm-up)."""
    request = compile_for(target, model_path, x.shape, profiling=True).create_infer_request()
    request.infer({0: x})
    totals: dict[tuple[str, str], float] = {}
    for _ in range(runs):
        request.infer({0: x})
        for node in request.get_profiling_info():  # the counters of the last inference
            if node.status.name == "EXECUTED":
                key = (node.node_name, node.node_type)
                totals[key] = totals.get(key, 0.0) + node.real_time.total_seconds() * 1e3
    return [(name, kind, ms / runs) for (name, kind), ms in totals.items() if ms > 0]


def quantize_openvino(source: str | Path, out_xml: str | Path, samples: np.ndarray,
                      keep_fp32: Sequence[str] = ()) -> Path:  # fmt: skip
    """NNCF post-training quantization of the ONNX ``source`` (read by OpenVINO) on ``samples`` (N, C, H, W),
    saved as OpenVINO IR ``out_xml`` (+ its ``.bin``). Both files are written under temporary names and renamed
    into place only when quantizing and saving succeeded, so a failure leaves a previous artifact as it was.
    ``keep_fp32``: names of ``source``'s nodes NNCF leaves unquantized (OpenVINO keeps ONNX node names)."""
    ov, nncf = _import("openvino"), _import("nncf")
    nncf.set_log_level(logging.ERROR)  # its notes would mix into a command's output
    model = ov.Core().read_model(str(source))
    items = calibration_batches(samples, onnx_input(source)[1][0] or 1)  # one image per item, NNCF's way
    try:
        with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: keep stdout to the command's result
            # OpenVINO splits an ONNX Conv/Gemm with a bias into NAME/WithoutBiases and the bias Add NAME
            names = [f"{n}{end}" for n in keep_fp32 for end in ("", "/WithoutBiases")]
            ignored = nncf.IgnoredScope(names=names, validate=False) if names else None
            quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items),
                                      target_device=nncf.TargetDevice.CPU, ignored_scope=ignored)  # fmt: skip
    except EdgepruneError:
        raise
    except Exception as exc:  # NNCF raises its own and its backends' errors
        raise QuantizationError(f"NNCF could not quantize {Path(source).name}: {type(exc).__name__}: {exc}"[:500]
                                ) from exc  # fmt: skip
    return save_ir(quantized, out_xml)


def save_ir(model, out_xml: str | Path) -> Path:
    """Save an OpenVINO model (or an ONNX file's path, read first) as IR ``out_xml`` + its ``.bin``, both under
    temporary names renamed into place only when saving succeeded."""
    ov = _import("openvino")
    if isinstance(model, (str, Path)):
        model = ov.Core().read_model(str(model))
    out_xml = Path(out_xml)
    with atomic_path(out_xml.with_suffix(".bin")) as tmp_bin, atomic_path(out_xml) as tmp_xml:
        # save_model writes the weights beside the .xml under the same stem: save there, move it to tmp_bin
        staged = tmp_xml.with_suffix(".staged.xml")
        try:
            ov.save_model(model, str(staged), compress_to_fp16=False)
            os.replace(staged.with_suffix(".bin"), tmp_bin)
            os.replace(staged, tmp_xml)
        finally:
            staged.unlink(missing_ok=True)
            staged.with_suffix(".bin").unlink(missing_ok=True)
    return out_xml


def runnable_model(target: Target, onnx_path: str | Path, input_shape: tuple[int, ...] | None = None,
                   calibration: np.ndarray | None = None, keep_fp32: Sequence[str] = ()
                   ) -> tuple[Path, str | None]:  # fmt: skip
    """The file OpenVINO compiles for ``target`` and what calibrated it: the ONNX export for fp32, an IR file
    given as is, else the int8 artifact (``model.ov-int8.xml`` beside the export) calibrated on ``calibration``
    images, or on random inputs when none are given (timing only: see :mod:`edgeprune.backends.quantize`),
    with the nodes named in ``keep_fp32`` left in float."""
    path = Path(onnx_path)
    if target.precision != "int8":
        return path, None
    if path.suffix == ".xml":
        return path, "given"
    samples, kind = calibration_for(target, calibration, input_shape or onnx_input(path)[1])
    return quantize_openvino(path, artifact_path(path, ".ov-int8.xml"), samples, keep_fp32), kind


class OpenVINORunner:
    def __init__(self, compiled, model_path: Path, calibration: str | None = None) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.model_path = model_path  # what was compiled: the ONNX export, or for int8 the quantized IR
        self.calibration = calibration  # int8: "images", "random" (timing only) or "given" (already quantized)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.request.infer({0: x})[0]

    def sync(self) -> None:  # infer() returns when the request has finished
        pass


class OpenVINOBackend:
    name = "openvino"

    def unavailable_reason(self, target: Target) -> str | None:
        if target.device != "cpu":
            return "edgeprune runs OpenVINO on the CPU only (device = \"cpu\")"
        if target.precision not in ("fp32", "int8"):
            return f"the openvino backend runs fp32 or int8, not {target.precision}"
        try:
            ov = _import("openvino")
            if target.precision == "int8":
                _import("nncf")
        except BackendError as exc:
            return str(exc)
        devices = ov.Core().available_devices
        return None if DEVICE in devices else f"OpenVINO here offers {devices}, not {DEVICE}"

    def prepare(self, target: Target, onnx_path: str | None = None, module=None, input_shape=None,
                calibration: np.ndarray | None = None, keep_fp32: Sequence[str] = ()) -> OpenVINORunner:  # fmt: skip
        """The ONNX export (int8: its NNCF-quantized IR, see :func:`runnable_model`; ``keep_fp32``: node names
        left in float) compiled for the CPU at ``input_shape`` (the ONNX file's own shape when not given)."""
        if onnx_path is None:
            raise BackendError("the openvino backend reads ONNX files: export the model first")
        why = self.unavailable_reason(target)
        if why:
            raise BackendError(f"target {target.name} cannot run here: {why}")
        path, calibrated = runnable_model(target, onnx_path, input_shape, calibration, keep_fp32)
        return OpenVINORunner(compile_for(target, path, input_shape), path, calibrated)

    def reload(self, target: Target, runner: OpenVINORunner) -> OpenVINORunner:
        """``runner``'s model compiled again: a new session, timed later. On a small shared VM the CPU plugin
        was seen running a model much slower for spells of seconds (docs/benchmarks/targets.md), and a pruned
        model slows by another factor than its dense original, so one timing's speedup is not the model's."""
        shape = tuple(runner.compiled.input(0).get_shape())
        as_built = target if runner.calibration else target.as_fp32()  # an int8 target's fp32 reference, too
        return OpenVINORunner(compile_for(as_built, runner.model_path, shape), runner.model_path, runner.calibration)

    def memory(self, target: Target, model_path: str, input_shape: tuple[int, ...]) -> dict:
        """Memory of a fresh process that compiles ``model_path`` (``runner.model_path``) and runs it once (MB)."""
        load = (f"c = compile_for(t, {str(model_path)!r}, {tuple(input_shape)!r})\n"
                f"c.create_infer_request().infer({{0: np.zeros({tuple(input_shape)!r}, np.float32)}})")  # fmt: skip
        return probe_memory("import openvino\nfrom edgeprune.backends.openvino import compile_for", load, target)
