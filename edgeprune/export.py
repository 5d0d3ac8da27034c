"""ONNX export of (pruned) models: one file, dynamic batch, checked against torch.

The dynamo exporter runs first with weights inline (``external_data=False``); the TorchScript exporter
is the fallback and the result says so. Models whose weights exceed ONNX's 2 GB protobuf limit are
written with an external data file beside the model, and the result says that too.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn

from edgeprune.errors import EdgepruneError
from edgeprune.graph import tree_tensors
from edgeprune.prune.oracle import output_error
from edgeprune.targets import Target

PROTOBUF_LIMIT = 2**31 - 1
INLINE_WEIGHT_LIMIT = int(1.8e9)  # leave room for the graph itself under the protobuf cap
# Relative error (norm-wise) allowed between onnxruntime and torch, by precision.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "int8": 5e-2}


class ExportError(EdgepruneError, RuntimeError):
    """Export failed, or the exported model disagrees with torch."""


@dataclass
class ExportResult:
    path: Path
    exporter: str  # "dynamo" | "torchscript"
    external_data: bool
    opset: int
    notes: list[str] = field(default_factory=list)


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | os.PathLike,
    opset: int = 18,
    optimize: bool = True,
) -> ExportResult:
    """Export ``model`` to ONNX with a dynamic batch dim and validate it with ``onnx.checker``."""
    path = Path(path)
    model = model.eval()
    if example.shape[0] == 1:  # torch.export treats size-1 dims as constants: trace at batch 2
        example = example.expand(2, *example.shape[1:]).contiguous()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    external = weight_bytes > INLINE_WEIGHT_LIMIT
    notes = []
    if external:
        notes.append(f"weights ({weight_bytes / 1e9:.2f} GB) exceed the 2 GB protobuf limit: stored beside {path.name}")
    with torch.no_grad():  # one name per output tensor: a detector returns several
        names = output_names(model(example))
    batch = torch.export.Dim("batch", min=1, max=1024)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # exporter chatter
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), str(path), dynamo=True, external_data=external, opset_version=opset,
                input_names=["input"], output_names=names, dynamic_shapes=({0: batch},), optimize=optimize,
            )  # fmt: skip
        exporter = "dynamo"
    except Exception as dynamo_exc:
        notes.append(f"dynamo exporter failed ({type(dynamo_exc).__name__}: {str(dynamo_exc)[:200]}); used TorchScript")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model, (example,), str(path), dynamo=False, opset_version=opset,
                    input_names=["input"], output_names=names,
                    dynamic_axes={name: {0: "batch"} for name in ["input", *names]},
                )  # fmt: skip
            exporter = "torchscript"
        except Exception as ts_exc:
            raise ExportError(f"ONNX export failed: dynamo: {dynamo_exc}; torchscript: {ts_exc}") from ts_exc
    try:
        onnx.checker.check_model(str(path), full_check=False)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported model fails onnx.checker: {exc}") from exc
    return ExportResult(path, exporter, external, opset, notes)


def output_names(outputs, prefix: str = "") -> list[str]:
    """The exported graph's output names for a model's ``outputs``: ``output`` for one tensor; a dict's keys
    (``bbox_regression``, ``cls_logits``); ``output0``, ``output1``... for a list or tuple."""
    if isinstance(outputs, dict):
        return [n for k, v in outputs.items() for n in output_names(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(outputs, (list, tuple)):
        return [n for i, v in enumerate(outputs) for n in output_names(v, f"{prefix or 'output'}{i}")]
    return [prefix or "output"] if isinstance(outputs, torch.Tensor) else []


def onnxruntime_outputs(path: str | os.PathLike, x: torch.Tensor, threads: int = 1) -> list[np.ndarray]:
    """Every output of an ONNX file on ``x``, run on onnxruntime's CPU provider set up as the backend does."""
    from edgeprune.backends import get_backend
    from edgeprune.targets import target_from_dict

    target = target_from_dict("export-check", {"backend": "onnxruntime", "threads": threads})
    runner = get_backend("onnxruntime").prepare(target, onnx_path=str(path))
    return runner.session.run(None, {runner.input_name: x.numpy()})


def run_onnxruntime(path: str | os.PathLike, x: torch.Tensor, threads: int = 1) -> np.ndarray:
    """The first output of an ONNX file on ``x`` (see :func:`onnxruntime_outputs`)."""
    return onnxruntime_outputs(path, x, threads)[0]


def check_onnx(model: nn.Module, path: str | os.PathLike, x: torch.Tensor, rtol: float = TOLERANCE["fp32"]) -> float:
    """Relative error of onnxruntime vs torch on ``x``, the largest over every output tensor; raises
    :class:`ExportError` above ``rtol``."""
    with torch.no_grad():
        expected = [t.numpy() for t in tree_tensors(model.eval()(x))]
    actual = onnxruntime_outputs(path, x)
    if [a.shape for a in actual] != [e.shape for e in expected]:
        raise ExportError(f"onnxruntime output shapes {[a.shape for a in actual]} differ from torch's "
                          f"{[e.shape for e in expected]}")  # fmt: skip
    err = output_error([torch.from_numpy(a) for a in actual], [torch.from_numpy(e) for e in expected])
    if not err <= rtol:
        raise ExportError(f"onnxruntime output differs from torch: relative error {err:.2e} > {rtol:.0e}")
    return err


def deployed_file(target: Target, module, input_chw: tuple[int, ...], out: str | Path, calibration=None,
                  **export: object) -> dict:  # fmt: skip
    """Build what ``target``'s runtime loads from ``module`` (exported to ONNX with ``export``'s options of
    :func:`edgeprune.export.export_onnx` and checked against torch, then prepared as ``validate`` prepares it:
    int8 targets calibrate on ``calibration`` images) and write it to ``out`` (:func:`write_deployed`).
    Returns what was written and how it was built."""
    import tempfile

    from edgeprune.backends import takes_module
    from edgeprune.backends.deployable import deployed_suffix, prepare_deployed, write_deployed

    suffix = deployed_suffix(target)
    if Path(out).suffix != suffix:
        raise ExportError(f"target {target.name} runs a {suffix} file: name the output FILE{suffix}")
    shape = target.input_shape(input_chw)
    with tempfile.TemporaryDirectory() as tmp:
        source = module
        if not takes_module(target):
            source = Path(tmp) / "model.onnx"
            export_onnx(module, torch.randn(*shape), source, **export)
            check_onnx(module, source, torch.randn(2, *shape[1:]))
        runner, chosen = prepare_deployed(target, source, shape, calibration)
        files = write_deployed(runner, out)
    return {"out": str(out), "files": [str(f) for f in files], "target": target.name, "precision": target.precision,
            "input_shape": list(shape), "calibration": None if calibration is None else {"count": len(calibration)},
            "int8_layers": chosen.to_dict() if chosen else None}  # fmt: skip
