"""Validate a pruned model against its original on a target: MACs vs predicted vs measured.

Users gate deployments on this, so it fails loudly: a numerics mismatch raises
:class:`NumericsFailure`; a measured speedup short of the profile's prediction by more than the
tolerance is reported as a failed gate (``report["gate"]["passed"]`` false).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from edgeprune import layer_times
from edgeprune.backends import Runner, get_backend, prepare_runner, time_runners, unavailable_reason
from edgeprune.errors import EdgepruneError
from edgeprune.export import TOLERANCE, ExportError, check_onnx, export_onnx
from edgeprune.latency import Profile, collect_layers
from edgeprune.latency.model import LatencyModel
from edgeprune.models import get_entry
from edgeprune.prune import load_model_ref
from edgeprune.targets import Target
from edgeprune.timing import Ratio

REPORT_SCHEMA = "edgeprune.report/1"


class ValidationError(EdgepruneError, RuntimeError):
    """Validation could not run (missing backend, bad model reference...)."""


class NumericsFailure(ValidationError):
    """The exported model disagrees with torch beyond the precision's tolerance."""

    exit_code = 3


@dataclass
class ModelRef:
    label: str
    name: str  # registry name (for pruned folders: the model they were pruned from)
    module: nn.Module
    input_chw: tuple[int, int, int]


def resolve_model(ref: str, pretrained: bool = False) -> ModelRef:
    """A registry name, or a folder written by ``edgeprune shrink`` / ``train`` (arch.json + weights)."""
    module, name, kwargs, _ = load_model_ref(ref, pretrained)
    entry = get_entry(name)
    size = kwargs.get(entry.size_kwarg or "", entry.input_size[1])
    return ModelRef(ref, name, module.eval(), (entry.input_size[0], size, size))


def count_macs(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int], dict[str, int]]:
    """fvcore's multiply-accumulate count: total, by operator, and by module path (one trace)."""
    from fvcore.nn import FlopCountAnalysis

    counter = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = {k: int(v) for k, v in counter.by_operator().items()}
    return int(counter.total()), by_op, {k: int(v) for k, v in counter.by_module().items()}


def largest_activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the largest tensor any leaf module outputs (a lower bound on activation memory)."""
    biggest = 0

    def hook(module, args, output):
        nonlocal biggest
        if isinstance(output, torch.Tensor):
            biggest = max(biggest, output.numel() * output.element_size())

    layer_times.forward_with_leaf_hooks(model, x, hook)
    return biggest


def accuracy_on(model: nn.Module, data: str | None, model_name: str) -> float | None:
    if data is None:
        return None
    from edgeprune.train.data import is_folder

    if is_folder(data):  # an image folder: its val/ images at the model's input size
        from edgeprune.train.sources import folder_accuracy

        return folder_accuracy(model, model_name, data)
    if data != "cifar10-lossless":
        raise ValidationError(f"--data {data!r} is not supported yet (supported: cifar10-lossless)")
    if get_entry(model_name).family != "cifar":
        raise ValidationError(f"cifar10-lossless accuracy needs a CIFAR model, not {model_name}")
    from edgeprune.train.data import load_lossless_subset

    x, y = load_lossless_subset("test")
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(1) for b in x.split(256)])
    return float((pred == y).float().mean())


def measure_side(ref: ModelRef, target: Target, folder: Path, data: str | None) -> tuple[dict, Runner, np.ndarray]:
    """Everything about one model but its latency, which :func:`validate` times for both sides together;
    returns the record, the prepared runner and its input."""
    shape = target.input_shape(ref.input_chw)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    macs, macs_by_op, macs_by_module = count_macs(ref.module, x)
    macs_by_layer = layer_times.macs_by_layer(ref.module, macs_by_module)
    norms = layer_times.norm_to_conv(ref.module, x)  # before a backend moves the module to its device
    onnx_path = folder / f"{ref.name}-{'pruned' if Path(ref.label).is_dir() else 'original'}.onnx"
    export = export_onnx(ref.module, x, onnx_path)
    checks = {"random": x.expand(3, *shape[1:]).clone() + torch.randn(3, *shape[1:])}
    if data == "cifar10-lossless":
        from edgeprune.train.data import load_lossless_subset

        checks["real"] = load_lossless_subset("test")[0][:8]
    numerics = {}
    for kind, inp in checks.items():
        try:
            numerics[kind] = check_onnx(ref.module, onnx_path, inp, TOLERANCE[target.precision])
        except ExportError as exc:
            raise NumericsFailure(f"numerics: {ref.label}: {kind} inputs: {exc}") from exc
    xn = x.numpy()
    cuda_base = _reset_cuda_peak() if target.backend == "torch" and target.device == "cuda" else 0
    runner = prepare_runner(target, ref.module if target.backend == "torch" else onnx_path, shape)
    runner.run(xn)
    runner.sync()
    memory = {
        "model_file_bytes": sum(p.stat().st_size for p in folder.glob(f"{onnx_path.name}*")),
        "weight_bytes": sum(p.numel() * p.element_size() for p in ref.module.parameters()),
        "largest_activation_bytes": largest_activation_bytes(ref.module, x),
    }
    if target.backend == "onnxruntime":
        memory.update(get_backend(target.backend).memory(target, str(onnx_path), shape))
    elif target.backend == "tensorrt":
        memory.update(engine_bytes=runner.engine_bytes, device_memory_bytes=runner.device_memory_bytes)
    elif target.device == "cuda":  # this side's own peak: the other side's module may still be resident
        memory["cuda_peak_allocated_bytes"] = torch.cuda.max_memory_allocated() - cuda_base
    if target.backend == "onnxruntime":
        layers, ops = layer_times.ort_layer_times(onnx_path, target, xn, norms)
    elif target.backend == "tensorrt":
        engine = runner.layer_times(xn)
        layers, ops = layer_times.attribute_engine_layers(engine, onnx_path, norms), engine
    else:
        layers, ops = layer_times.torch_layer_times(runner.module, runner.to_input(xn))
    return {
        "model": ref.label, "registry_name": ref.name, "input_shape": list(shape), "macs": macs,
        "macs_by_op": macs_by_op, "params": sum(p.numel() for p in ref.module.parameters()),
        "exporter": export.exporter, "export_notes": export.notes, "numerics_rel_err": numerics,
        "predicted_ms": None, "latency": None, "memory": memory, "ms_by_op": ops,
        "ms_by_layer": layers, "macs_by_layer": macs_by_layer,
        "accuracy": accuracy_on(ref.module, data, ref.name),
    }, runner, xn  # fmt: skip


def predict_pair(profile: Profile, original: ModelRef, pruned: ModelRef, shape: tuple[int, ...]) -> tuple[float, float]:
    """Both models' predicted ms. The pruned one is priced against the original's layers, as the planner prices
    it: a layer it no longer has is one of a removed residual branch (the profile's removal scale applies)."""
    dense, now = collect_layers(original.module, shape), collect_layers(pruned.module, shape)
    return (LatencyModel(profile, original.name).predict(dense).ms,
            LatencyModel(profile, pruned.name).predict_pruned(dense, now).ms)  # fmt: skip


def _reset_cuda_peak() -> int:
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def validate(
    original: ModelRef,
    pruned: ModelRef,
    target: Target,
    out_dir: str | Path,
    profile: Profile | None = None,
    data: str | None = None,
    tolerance: float = 0.15,
    expected_speedup: float | None = None,
) -> dict:
    """Measure both models, derive the speedups, gate, and write ``report.json`` into ``out_dir``.

    The gate holds the measured speedup against ``expected_speedup`` when given (what the plan measured while
    it was planned: the prediction is then known to be off), else against the profile's prediction.
    """
    reason = unavailable_reason(target)
    if reason:
        raise ValidationError(f"target {target.name} cannot run here: {reason}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        a, run_a, x = measure_side(original, target, Path(tmp), data)
        b, run_b, x_b = measure_side(pruned, target, Path(tmp), data)
        if x.shape != x_b.shape:
            raise ValidationError(f"the models take different inputs: {list(x.shape)} and {list(x_b.shape)}")
        if profile is not None:
            a["predicted_ms"], b["predicted_ms"] = predict_pair(profile, original, pruned, tuple(x.shape))
        # Alternating rounds: drift during the measurement slows both models alike instead of one of them.
        timed = time_runners({"original": run_a, "pruned": run_b}, x, target, reference="pruned")
        a["latency"], b["latency"] = timed.stats["original"].to_dict(), timed.stats["pruned"].to_dict()
    derived = derive(a, b, timed.ratios["original"])  # the original's time over the pruned one's: the speedup
    gate = gate_speedup(derived, tolerance, expected_speedup)
    report = {
        "schema": REPORT_SCHEMA, "target": target.name, "target_spec": {"backend": target.backend,
        "device": target.device, "precision": target.precision, "threads": target.threads},
        "profile_device": profile.device if profile else None, "original": a, "pruned": b,
        "derived": derived, "gate": gate, "seconds": round(time.time() - started, 1),
    }  # fmt: skip
    from edgeprune.report import write_report

    write_report(report, out)
    return report


def gate_speedup(derived: dict, tolerance: float, expected_speedup: float | None = None) -> dict:
    """Pass when the measured speedup is within ``tolerance`` of the expected one: ``expected_speedup`` (measured
    while planning) when given, else the profile's prediction; not gated without either."""
    gate = {"tolerance": tolerance, "passed": True, "reason": "no profile: speedup not gated"}
    expected, source = (expected_speedup, "measured while planning") if expected_speedup else \
        (derived.get("predicted_speedup"), "predicted")  # fmt: skip
    if expected:
        floor = expected * (1 - tolerance)
        gate["passed"] = derived["measured_speedup"] >= floor
        verdict = "meets" if gate["passed"] else "falls short of"
        gate["reason"] = (f"measured speedup {derived['measured_speedup']:.2f}x {verdict} {expected:.2f}x "
                          f"({source}) within {tolerance:.0%} (floor {floor:.2f}x)")  # fmt: skip
    return gate


def derive(a: dict, b: dict, speedup: Ratio | None = None) -> dict:
    """Ratios of the two sides. ``speedup``: the measured speedup paired round by round, with its interval
    (``speedup_ci``); without it, the ratio of the two median latencies."""

    def ratio(x, y):
        return x / y if x and y else None

    d = {
        "macs_speedup": ratio(a["macs"], b["macs"]),
        "params_reduction": ratio(a["params"], b["params"]),
        "measured_speedup": speedup.median if speedup else ratio(a["latency"]["median_ms"], b["latency"]["median_ms"]),
        "predicted_speedup": ratio(a["predicted_ms"], b["predicted_ms"]),
        "weight_memory_reduction": ratio(a["memory"]["weight_bytes"], b["memory"]["weight_bytes"]),
    }
    if speedup:
        d["speedup_ci"] = [speedup.low, speedup.high]
    if "runtime_mb" in a["memory"]:
        d["runtime_memory_reduction"] = ratio(a["memory"]["runtime_mb"], b["memory"]["runtime_mb"])
    d["realization"] = ratio(d["measured_speedup"], d["macs_speedup"])
    if a.get("accuracy") is not None and b.get("accuracy") is not None:
        d["accuracy_delta_points"] = 100 * (b["accuracy"] - a["accuracy"])
    return d
