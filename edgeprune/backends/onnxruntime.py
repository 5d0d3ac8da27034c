"""ONNX Runtime backend (CPU, CUDA and TensorRT execution providers; int8: static QDQ quantization on CPU)."""

from __future__ import annotations

import bisect
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeprune.backends.base import BackendError
from edgeprune.backends.memory import probe_memory
from edgeprune.backends.quantize import (
    QuantizationError,
    artifact_path,
    calibration_for,
    is_quantized,
    onnx_input,
    quantize_onnx,
)
from edgeprune.targets import Target
from edgeprune.timing import summarize_rounds

_DEVICE_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider"]}


def providers_for(target: Target) -> list[str]:
    return list(target.providers) or _DEVICE_PROVIDERS[target.device]


def session_options(target: Target):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = target.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads keep burning CPU after a run and slow down whatever is timed next.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def kernel_ms_by_op(events: list[dict], by_node: bool = False) -> list[dict[str, list[float]]]:
    """Per session.run, from an onnxruntime profile: operator type (``by_node``: "op: node name") -> the
    durations (ms) of its compute kernels in that run. A node event falls inside the ``model_run`` event that
    times its run."""
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")
    per_run: list[dict[str, list[float]]] = [{} for _ in runs]
    starts = [r[0] for r in runs]
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        i = bisect.bisect_right(starts, e["ts"]) - 1
        if i >= 0 and e["ts"] <= runs[i][1]:
            op = e.get("args", {}).get("op_name", "?")
            key = f"{op}: {e['name'][: -len('_kernel_time')]}" if by_node else op
            per_run[i].setdefault(key, []).append(e["dur"] / 1e3)
    return per_run


def kernel_ms_per_run(events: list[dict]) -> list[float]:
    """Per session.run: the summed duration (ms) of the compute kernels, from an onnxruntime profile.

    Layout reorders are left out: a lone layer needs them, a chain of layers in a real network mostly
    does not. Session overhead (input copy, output allocation) is left out with them, which is why a
    micro-model timed this way costs what the layer costs inside a network, not what a one-layer network
    costs.
    """
    return [sum(sum(ms) for op, ms in run.items() if not op.startswith("Reorder")) for run in kernel_ms_by_op(events)]


def runnable_model(target: Target, onnx_path: str | Path, input_shape: tuple[int, ...] | None = None,
                   calibration: np.ndarray | None = None, keep_fp32: Sequence[str] = ()
                   ) -> tuple[Path, str | None]:  # fmt: skip
    """The file a session on ``target`` runs, and what calibrated it: ``onnx_path`` itself for fp32 (and for a
    file already quantized), else its int8 artifact (``model.int8.onnx`` beside it) calibrated on
    ``calibration`` images by the target's method, or on random inputs by minmax when none are given (timing
    only: see :mod:`edgeprune.backends.quantize`), with the nodes named in ``keep_fp32`` left in float."""
    path = Path(onnx_path)
    if target.precision != "int8":
        return path, None
    if is_quantized(path):
        return path, "given"
    samples, kind = calibration_for(target, calibration, input_shape or onnx_input(path)[1])
    # random inputs time the graph, whose nodes no method changes: the fastest method calibrates them
    method = target.calibration_method if kind == "images" else "minmax"
    return quantize_onnx(path, artifact_path(path, ".int8.onnx"), samples, method, keep_fp32), kind


def profile_events(target: Target, onnx_path: str, x: np.ndarray, runs: int) -> list[dict]:
    """Run ``onnx_path`` ``runs`` times with onnxruntime's profiler on; its events (node and run timings). An
    int8 target runs the quantized model (:func:`runnable_model`)."""
    return profile_sessions(target, [onnx_path], x, runs)[0]


def profile_sessions(target: Target, onnx_paths: list, x: np.ndarray, runs: int, per_round: int | None = None
                     ) -> list[list[dict]]:  # fmt: skip
    """:func:`profile_events` of several models, each in its own profiled session, run in alternating rounds of
    ``per_round`` runs (default: all at once) so that the machine's drift hits them alike."""
    import onnxruntime as ort

    paths = [runnable_model(target, p, x.shape)[0] for p in onnx_paths]
    with tempfile.TemporaryDirectory() as tmp:
        sessions = []
        for i, path in enumerate(paths):
            opts = session_options(target)
            opts.enable_profiling = True
            opts.profile_file_prefix = str(Path(tmp) / f"ort{i}")
            session = ort.InferenceSession(str(path), opts, providers=providers_for(target))
            _check_providers(session, providers_for(target))
            sessions.append(session)
        name = sessions[0].get_inputs()[0].name
        step = per_round or runs
        for start in range(0, runs, step):
            for session in sessions:
                for _ in range(min(step, runs - start)):
                    session.run(None, {name: x})
        return [json.loads(Path(s.end_profiling()).read_text()) for s in sessions]


def measure_kernels(target: Target, onnx_path: str, x: np.ndarray, warmup: int, repeats: int, rounds: int):
    """Median (over rounds of ``repeats`` runs) of :func:`kernel_ms_per_run`, and the spread across rounds, as
    :func:`edgeprune.timing.summarize_rounds` states them for wall-clock times."""
    per_run = kernel_ms_per_run(profile_events(target, onnx_path, x, warmup + repeats * rounds))[warmup:]
    stats = summarize_rounds([per_run[i * repeats : (i + 1) * repeats] for i in range(rounds)])
    return stats.median_ms, stats.spread_pct


def _check_providers(session, wanted: list[str]) -> None:
    active = session.get_providers()
    # A requested CUDA/TensorRT provider whose libraries fail to load silently falls back to CPU.
    if active[0] != wanted[0]:
        raise BackendError(f"requested {wanted[0]} but the session runs on {active}: refusing to time on CPU")


class OrtRunner:
    def __init__(self, session, model_path: Path | None = None, calibration: str | None = None) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.model_path = model_path  # the file the session runs: for int8, the quantized artifact
        self.calibration = calibration  # int8: "images", "random" (timing only) or "given" (already quantized)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def sync(self) -> None:  # session.run returns after the device finished
        pass


def _int8_reason(target: Target) -> str | None:
    if target.precision == "int8" and providers_for(target) != ["CPUExecutionProvider"]:
        return "edgeprune quantizes for onnxruntime's CPU provider only (int8 on CUDA/TensorRT is not built)"
    return None


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def unavailable_reason(self, target: Target) -> str | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime is not installed"
        missing = [p for p in providers_for(target) if p not in ort.get_available_providers()]
        if missing:
            return (f"onnxruntime here offers {ort.get_available_providers()}, not {missing}"
                    " (CUDA needs the gpu extra, which replaces onnxruntime, and a GPU)")
        return _int8_reason(target)

    def prepare(self, target: Target, onnx_path: str | None = None, module=None, input_shape=None,
                calibration: np.ndarray | None = None, keep_fp32: Sequence[str] = ()) -> OrtRunner:  # fmt: skip
        """A session on ``onnx_path``; for an int8 target, on its quantized artifact (:func:`runnable_model`:
        ``calibration`` images (N, C, H, W), or random inputs for timing only; ``keep_fp32``: node names left
        in float)."""
        import onnxruntime as ort

        if onnx_path is None:
            raise BackendError("the onnxruntime backend runs ONNX files: export the model first")
        if _int8_reason(target):
            raise BackendError(f"target {target.name}: {_int8_reason(target)}")
        path, calibrated = runnable_model(target, onnx_path, input_shape, calibration, keep_fp32)
        wanted = providers_for(target)
        try:
            session = ort.InferenceSession(str(path), session_options(target), providers=wanted)
        except Exception as exc:  # onnxruntime's own exception types; a quantized model it refuses lands here
            if calibrated is None:
                raise
            raise QuantizationError(f"onnxruntime refused the int8 model {path.name}: {exc}"[:500]) from exc
        _check_providers(session, wanted)
        return OrtRunner(session, path, calibrated)

    def memory(self, target: Target, onnx_path: str, input_shape: tuple[int, ...]) -> dict:
        """Memory of a fresh process that loads ``onnx_path`` (what the runner runs: ``runner.model_path``) and
        runs it once (MB)."""
        load = (f"s = ort.InferenceSession({str(onnx_path)!r}, session_options(t), providers=providers_for(t))\n"
                f"s.run(None, {{s.get_inputs()[0].name: np.zeros({tuple(input_shape)!r}, np.float32)}})")  # fmt: skip
        imports = "import onnxruntime as ort\nfrom edgeprune.backends.onnxruntime import session_options, providers_for"
        return probe_memory(imports, load, target)
