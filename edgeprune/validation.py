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
from edgeprune.backends import Runner, get_backend, prepare_runner, takes_module, time_runners, unavailable_reason
from edgeprune.backends.deployable import deployed_suffix, model_files, prepare_deployed, write_deployed
from edgeprune.errors import EdgepruneError
from edgeprune.export import TOLERANCE, ExportError, check_onnx, export_onnx
from edgeprune.latency import Profile, collect_layers
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import DEFAULT_SETTINGS
from edgeprune.latency.sweep import disagree
from edgeprune.latency.target_profile import run_mismatch
from edgeprune.macs import count_macs
from edgeprune.models import get_entry
from edgeprune.models.registry import Pretrained, square_side
from edgeprune.prune import input_chw, load_model_ref
from edgeprune.targets import Target
from edgeprune.timing import Ratio, Timing

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
    input_chw: tuple[int, ...]  # (C, H, W), or (C, L) for a sequence model


def resolve_model(ref: str, pretrained: Pretrained = False, side: int | None = None) -> ModelRef:
    """A registry name, or a folder written by ``edgeprune prune`` / ``train`` (arch.json + weights), at the
    square ``side`` (default: the size saved with the folder, else the registry's)."""
    module, name, kwargs, _ = load_model_ref(ref, pretrained)
    return ModelRef(ref, name, module.eval(), input_chw(ref, name, kwargs, side))


def resolve_pair(original: str, pruned: str, pretrained: Pretrained = False,
                 side: int | None = None) -> tuple[ModelRef, ModelRef]:  # fmt: skip
    """The two sides of a validation, both at ``side`` or else the pruned model's input size (a model trained and
    pruned at ``--input-size`` is compared with its original at that size)."""
    b = resolve_model(pruned, side=side)
    return resolve_model(original, pretrained, square_side(b.input_chw)), b


def accuracy_on(model: nn.Module, data: str | None, model_name: str, side: int | None = None) -> float | None:
    if data is None:
        return None
    from edgeprune.train.data import is_folder

    if is_folder(data):  # an image folder: its val/ images at the model's input size
        from edgeprune.train.sources import folder_accuracy

        return folder_accuracy(model, model_name, data, side=side)
    if data != "cifar10-lossless":
        raise ValidationError(f"--data {data!r} is not supported yet (supported: cifar10-lossless)")
    if get_entry(model_name).family != "cifar":
        raise ValidationError(f"cifar10-lossless accuracy needs a CIFAR model, not {model_name}")
    from edgeprune.train.data import load_lossless_subset

    x, y = load_lossless_subset("test")
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(1) for b in x.split(256)])
    return float((pred == y).float().mean())


def score_on(model: nn.Module, data: str | None, model_name: str, side: int | None = None,
             deployed: Runner | None = None, batch: int = 1) -> tuple[float | None, dict | None]:  # fmt: skip
    """The figure validate reports as accuracy and the task's metrics: a classifier's top-1 (no metrics), or, with
    a dataset yaml as ``data``, a detector's mAP50-95 and Ultralytics' metrics (images letterboxed to ``side``
    square, as the exported model runs). With ``deployed`` (a prepared runner of ``model``'s export, its batch
    ``batch``), the deployed artifact is scored instead of the torch model."""
    from edgeprune.train.detect_data import is_detection_data

    runs = DeployedModel(deployed, batch, model) if deployed is not None else None
    if data is None or not is_detection_data(data):
        return accuracy_on(runs or model, data, model_name, side), None
    from edgeprune.train.detect import detection_metrics, detection_net
    from edgeprune.train.detect_deployed import deployed_detector

    net = detection_net(model, model_name)
    metrics = detection_metrics(deployed_detector(net, runs) if runs else net, data, imgsz=side, rect=False)
    return metrics["mAP50-95"], {k: v for k, v in metrics.items() if k != "per_class"}


class DeployedModel(nn.Module):
    """A prepared runner (the deployed artifact in its runtime) as a module, so accuracy is measured on it the
    way it is on the torch model; batches are run in pieces of the batch size it was prepared for."""

    def __init__(self, runner: Runner, batch: int, module: nn.Module) -> None:
        super().__init__()
        self.runner, self.batch = runner, batch
        if getattr(module, "pretrained_cfg", None):  # the preprocessing an image folder is read with
            self.pretrained_cfg = module.pretrained_cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.numpy()
        n = len(x)
        padded = np.concatenate([x, np.repeat(x[-1:], -n % self.batch, axis=0)])
        return torch.from_numpy(np.concatenate([self.runner.run(padded[i : i + self.batch])
                                                for i in range(0, len(padded), self.batch)])[:n])  # fmt: skip


def calibration_source(target: Target, data: str | None, calibration_data: str | None) -> str | None:
    """What an int8 deployed model is calibrated on: ``calibration_data`` (--calibration-data), else the
    target's ``calibration_data``, else ``data`` (its train split); None: random inputs, timing only."""
    if target.precision != "int8":
        return None
    return calibration_data or target.calibration_data or data


def calibration_set(ref: ModelRef, target: Target, data: str | None,
                    calibration_data: str | None) -> tuple[str | None, np.ndarray | None]:  # fmt: skip
    """What ``ref`` is calibrated on for ``target`` (:func:`calibration_source`) and those images, preprocessed
    as ``ref`` is evaluated; (None, None) where nothing is (fp32, or no data: random inputs, timing only)."""
    source = calibration_source(target, data, calibration_data)
    if not source:
        return None, None
    from edgeprune.train.calibration import calibration_images

    side = square_side(ref.input_chw)
    return source, calibration_images(source, target.calibration_count, ref.module, ref.name, side)


def onnx_file(ref: ModelRef, folder: Path) -> Path:
    return folder / f"{ref.name}-{'pruned' if Path(ref.label).is_dir() else 'original'}.onnx"


def file_bytes(path: Path) -> int:
    """Bytes of a model file and the files that belong to it (external data, an OpenVINO IR's .bin)."""
    return sum(p.stat().st_size for p in model_files(path))


def measure_side(ref: ModelRef, target: Target, folder: Path, data: str | None,
                 calibration_data: str | None = None) -> tuple[dict, Runner, np.ndarray]:  # fmt: skip
    """Everything about one model but its latency, which :func:`validate` times for both sides together;
    returns the record, the prepared runner and its input. On an int8 target the runner runs the quantized
    artifact, calibrated on :func:`calibration_source`, and the record holds its accuracy."""
    shape = target.input_shape(ref.input_chw)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    macs, macs_by_op, macs_by_module = count_macs(ref.module, x)
    macs_by_layer = layer_times.macs_by_layer(ref.module, macs_by_module)
    norms = layer_times.norm_to_conv(ref.module, x)  # before a backend moves the module to its device
    onnx_path = onnx_file(ref, folder)
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
    source, images = calibration_set(ref, target, data, calibration_data)
    runner, int8_layers = prepare_deployed(target, ref.module if takes_module(target) else onnx_path, shape, images)
    runner.run(xn)
    runner.sync()
    deployed = getattr(runner, "model_path", None) or onnx_path  # what the runtime runs (int8: the quantized file)
    memory = {
        "model_file_bytes": file_bytes(onnx_path),
        "deployed_file_bytes": file_bytes(deployed),
        "weight_bytes": sum(p.numel() * p.element_size() for p in ref.module.parameters()),
        "largest_activation_bytes": layer_times.largest_activation_bytes(ref.module, x),
    }
    shipped = int8_layers.runtime_target(target) if int8_layers else target  # the fp32 model may have won
    if target.backend in ("onnxruntime", "openvino", "executorch"):
        memory.update(get_backend(target.backend).memory(shipped, str(deployed), shape))
    elif target.backend == "tensorrt":
        memory.update(engine_bytes=runner.engine_bytes, device_memory_bytes=runner.device_memory_bytes)
    elif target.device == "cuda":  # this side's own peak: the other side's module may still be resident
        memory["cuda_peak_allocated_bytes"] = torch.cuda.max_memory_allocated() - cuda_base
    side = square_side(ref.input_chw)
    score = score_on(ref.module, data, ref.name, side)
    on_runtime = score_on(ref.module, data, ref.name, side, runner, shape[0]) if target.precision == "int8" \
        else (None, None)  # fmt: skip
    metric = None if score[0] is None else "mAP50-95" if score[1] else "top-1"
    if target.backend == "onnxruntime":
        layers, ops = layer_times.ort_layer_times(deployed, target, xn, norms)
    elif target.backend == "openvino":
        layers, ops = layer_times.openvino_layer_times(Path(deployed), onnx_path, shipped, xn, norms)
    elif target.backend == "executorch":
        layers, ops = layer_times.executorch_layer_times(Path(deployed), ref.module, shipped, xn)
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
        "accuracy": score[0], "accuracy_metric": metric, "task_metrics": score[1],
        "deployed_accuracy": on_runtime[0], "deployed_task_metrics": on_runtime[1],
        "calibration": {"data": source, "count": len(images) if images is not None else None,
                        "kind": getattr(runner, "calibration", None)} if target.precision == "int8" else None,
        "int8_layers": int8_layers.to_dict() if int8_layers else None,
    }, runner, xn  # fmt: skip


def predict_pair(profile: Profile, original: ModelRef, pruned: ModelRef, shape: tuple[int, ...]) -> tuple[float, float]:
    """Both models' predicted ms. The pruned one is priced against the original's layers, as the planner prices
    it: a layer it no longer has is one of a removed residual branch (the profile's removal scale applies)."""
    dense, now = collect_layers(original.module, shape), collect_layers(pruned.module, shape)
    return (LatencyModel(profile, original.name, shape[-1]).predict(dense).ms,
            LatencyModel(profile, pruned.name, shape[-1]).predict_pruned(dense, now).ms)  # fmt: skip


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
    calibration_data: str | None = None,
) -> dict:
    """Measure both models, derive the speedups, gate, and write ``report.json`` into ``out_dir``.

    The gate holds the measured speedup against ``expected_speedup`` when given (what the plan measured while
    it was planned: the prediction is then known to be off), else against the profile's prediction.

    On an int8 target both models run quantized (calibrated on :func:`calibration_source`): the gate's speedup
    is over the quantized original, the dense fp32 original on the same runtime is timed beside them
    (``speedup_over_fp32``), with ``data`` the quantized models' accuracy is measured too, and the pruned
    model's quantized file, as measured, is written to ``out_dir`` (``deployed.onnx``, ``.xml`` + ``.bin`` or
    ``.pte``; ``deployed_files`` in the report).
    """
    reason = unavailable_reason(target)
    if reason:
        raise ValidationError(f"target {target.name} cannot run here: {reason}")
    if profile is not None and (mismatch := run_mismatch(profile, target)):
        raise ValidationError(mismatch)
    if data is not None:  # before anything is built: a detector scored on class folders fails late
        from edgeprune.models.ultralytics_models import FAMILY
        from edgeprune.train.detect_data import check_data_kind

        check_data_kind(original.label, get_entry(original.name).family == FAMILY, data)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        a, run_a, x = measure_side(original, target, Path(tmp), data, calibration_data)
        b, run_b, x_b = measure_side(pruned, target, Path(tmp), data, calibration_data)
        if x.shape != x_b.shape:
            raise ValidationError(f"the models take different inputs: {list(x.shape)} and {list(x_b.shape)}")
        if profile is not None:
            a["predicted_ms"], b["predicted_ms"] = predict_pair(profile, original, pruned, tuple(x.shape))
        # Alternating rounds: drift during the measurement slows both models alike instead of one of them.
        runners = {"original": run_a, "pruned": run_b}
        if target.precision == "int8":  # the dense fp32 model on the same runtime: what quantizing is weighed by
            source = original.module if takes_module(target) else onnx_file(original, Path(tmp))
            runners["original-fp32"] = prepare_runner(target.as_fp32(), source, x.shape)
        timed, sessions = time_sessions(target, runners, x)
        a["latency"], b["latency"] = timed.stats["original"].to_dict(), timed.stats["pruned"].to_dict()
        if "original-fp32" in runners:
            a["latency_fp32"] = timed.stats["original-fp32"].to_dict()
        # the pruned int8 file that was measured, beside the report: what ships (fp32: `edgeprune export`)
        deployed = [str(f) for f in write_deployed(run_b, out / f"deployed{deployed_suffix(target)}")] \
            if target.precision == "int8" else []  # fmt: skip
    # the original's time over the pruned one's: the speedup
    derived = derive(a, b, timed.ratios["original"], timed.ratios.get("original-fp32"))
    gate = gate_speedup(derived, tolerance, expected_speedup)
    report = {
        "schema": REPORT_SCHEMA, "target": target.name, "target_spec": {"backend": target.backend,
        "device": target.device, "precision": target.precision, "threads": target.threads},
        "profile_device": profile.device if profile else None, "original": a, "pruned": b,
        "derived": derived, "gate": gate, "seconds": round(time.time() - started, 1), "deployed_files": deployed,
        "session_speedups": sessions,
    }  # fmt: skip
    from edgeprune.report import speed_warnings, write_report

    report["warnings"] = speed_warnings(report)  # for a pipeline reading report.json or --json
    write_report(report, out)
    return report


def time_sessions(target: Target, runners: dict[str, Runner], x: np.ndarray) -> tuple[Timing, list[float]]:
    """The runners timed together, and the pruned model's speedup in each session timed. On a backend that can
    load a fresh session of what a runner runs (``reload``: ExecuTorch, OpenVINO), as calibration runs are settled
    (:func:`edgeprune.latency.sweep.settle_runs`): a second session of every runner, a third where the two
    speedups are further apart than the sweep's tolerance, and the timing of the median one is kept."""
    backend = get_backend(target.backend)
    timings = [time_runners(runners, x, target, reference="pruned")]
    if not hasattr(backend, "reload"):
        return timings[0], [timings[0].ratios["original"].median]

    def again() -> Timing:
        return time_runners({k: backend.reload(target, r) for k, r in runners.items()}, x, target, reference="pruned")

    timings.append(again())
    speed = [t.ratios["original"].median for t in timings]
    if disagree(min(speed), max(speed), DEFAULT_SETTINGS.sweep["tolerance"]):
        timings.append(again())
        speed.append(timings[-1].ratios["original"].median)
    kept = sorted(range(len(speed)), key=speed.__getitem__)[(len(speed) - 1) // 2]  # of two that agree: the slower
    return timings[kept], speed


def gate_speedup(derived: dict, tolerance: float, expected_speedup: float | None = None) -> dict:
    """Pass when the measured speedup is within ``tolerance`` of the expected one: ``expected_speedup`` (measured
    while planning) when given, else the profile's prediction; not gated without either."""
    gate = {"tolerance": tolerance, "passed": True, "reason": "no profile given: speedup not gated"}
    expected, source = (expected_speedup, "measured while planning") if expected_speedup else \
        (derived.get("predicted_speedup"), "predicted")  # fmt: skip
    if expected:
        floor = expected * (1 - tolerance)
        gate["passed"] = derived["measured_speedup"] >= floor
        verdict = "meets" if gate["passed"] else "falls short of"
        gate["reason"] = (f"measured speedup {derived['measured_speedup']:.2f}x {verdict} {expected:.2f}x "
                          f"({source}) within {tolerance:.0%} (floor {floor:.2f}x)")  # fmt: skip
    return gate


def derive(a: dict, b: dict, speedup: Ratio | None = None, over_fp32: Ratio | None = None) -> dict:
    """Ratios of the two sides. ``speedup``: the measured speedup paired round by round, with its interval
    (``speedup_ci``); without it, the ratio of the two median latencies. ``over_fp32`` (int8 targets): the dense
    fp32 original's time over the pruned quantized one's. Accuracy deltas in points: pruning
    (``accuracy_delta_points``, torch vs torch), quantization (``quantization_delta_points``, the pruned model
    deployed vs in torch) and both (``deployed_delta_points``, the pruned model deployed vs the torch original)."""

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
    if over_fp32:
        d["speedup_over_fp32"], d["speedup_over_fp32_ci"] = over_fp32.median, [over_fp32.low, over_fp32.high]
    if a.get("accuracy") is not None and b.get("accuracy") is not None:
        d["accuracy_delta_points"] = 100 * (b["accuracy"] - a["accuracy"])
    if b.get("deployed_accuracy") is not None and b.get("accuracy") is not None:
        d["quantization_delta_points"] = 100 * (b["deployed_accuracy"] - b["accuracy"])
        d["deployed_delta_points"] = 100 * (b["deployed_accuracy"] - a["accuracy"])
    return d
