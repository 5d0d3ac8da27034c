"""ONNX Runtime backend (CPU, CUDA and TensorRT execution providers)."""

from __future__ import annotations

import bisect
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgeprune.backends.base import BackendError
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


def kernel_ms_per_run(events: list[dict]) -> list[float]:
    """Per session.run: the summed duration (ms) of the compute kernels, from an onnxruntime profile.

    Layout reorders are left out: a lone layer needs them, a chain of layers in a real network mostly
    does not. Session overhead (input copy, output allocation) is left out with them, which is why a
    micro-model timed this way costs what the layer costs inside a network, not what a one-layer network
    costs. A node event falls inside the ``model_run`` event that times its run.
    """
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")
    totals = [0.0] * len(runs)
    starts = [r[0] for r in runs]
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        if e.get("args", {}).get("op_name", "").startswith("Reorder"):
            continue
        i = bisect.bisect_right(starts, e["ts"]) - 1
        if i >= 0 and e["ts"] <= runs[i][1]:
            totals[i] += e["dur"] / 1e3
    return totals


def profile_events(target: Target, onnx_path: str, x: np.ndarray, runs: int) -> list[dict]:
    """Run ``onnx_path`` ``runs`` times with onnxruntime's profiler on; its events (node and run timings)."""
    import onnxruntime as ort

    opts = session_options(target)
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(onnx_path), opts, providers=providers_for(target))
        _check_providers(session, providers_for(target))
        name = session.get_inputs()[0].name
        for _ in range(runs):
            session.run(None, {name: x})
        return json.loads(Path(session.end_profiling()).read_text())


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
    def __init__(self, session) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def sync(self) -> None:  # session.run returns after the device finished
        pass


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
        return None

    def prepare(self, target: Target, onnx_path: str | None = None, module=None) -> OrtRunner:
        import onnxruntime as ort

        if onnx_path is None:
            raise BackendError("the onnxruntime backend runs ONNX files: export the model first")
        wanted = providers_for(target)
        session = ort.InferenceSession(str(onnx_path), session_options(target), providers=wanted)
        _check_providers(session, wanted)
        return OrtRunner(session)

    def memory(self, target: Target, onnx_path: str, input_shape: tuple[int, ...]) -> dict:
        """Memory of a fresh process that loads the model and runs it once (MB)."""
        code = f"""
import json, resource, numpy as np, onnxruntime as ort
from edgeprune.targets import target_from_dict
from edgeprune.backends.onnxruntime import session_options, providers_for, current_rss_mb
t = target_from_dict({target.name!r}, json.loads({json.dumps(_fields(target))!r}))
before = current_rss_mb()
s = ort.InferenceSession({str(onnx_path)!r}, session_options(t), providers=providers_for(t))
s.run(None, {{s.get_inputs()[0].name: np.zeros({tuple(input_shape)!r}, np.float32)}})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"rss_before_mb": before, "rss_after_mb": current_rss_mb(), "peak_rss_mb": peak}}))
"""
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise BackendError(f"memory probe failed: {proc.stderr.strip().splitlines()[-1:]}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        # Growth of resident memory from loading the session and running it once (the model's cost);
        # the process peak also counts what importing onnxruntime itself touched.
        out["runtime_mb"] = max(0.0, out["rss_after_mb"] - out["rss_before_mb"])
        return out


def _fields(target: Target) -> dict:
    """The target's settings as a JSON-able dict (what target_from_dict takes back)."""
    out = {k: v for k, v in vars(target).items() if k not in ("name", "source")}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def current_rss_mb() -> float:
    """Resident set size now (Linux /proc; falls back to the peak elsewhere)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
