"""ONNX export of (pruned) models, checked against torch. Issue-level detail: one file, dynamic batch."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn


class ExportError(RuntimeError):
    """Export failed, or the exported model disagrees with torch."""


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | os.PathLike, opset: int = 18) -> str:
    """Export ``model`` to a single ONNX file with a dynamic batch dim; returns the exporter used.

    The dynamo exporter is tried first (weights inline, ``external_data=False``); the TorchScript
    exporter is the fallback.
    """
    path = Path(path)
    model = model.eval()
    if example.shape[0] == 1:  # torch.export treats size-1 dims as constants: trace at batch 2
        example = example.expand(2, *example.shape[1:]).contiguous()
    batch = torch.export.Dim("batch", min=1, max=1024)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), str(path), dynamo=True, external_data=False, opset_version=opset,
                input_names=["input"], output_names=["output"], dynamic_shapes=({0: batch},), verbose=False,
            )  # fmt: skip
        return "dynamo"
    except Exception as dynamo_exc:  # fall back, but keep the first cause visible if both fail
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model, (example,), str(path), dynamo=False, opset_version=opset,
                    input_names=["input"], output_names=["output"],
                    dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                )  # fmt: skip
            return "torchscript"
        except Exception as ts_exc:
            raise ExportError(f"ONNX export failed: dynamo: {dynamo_exc}; torchscript: {ts_exc}") from ts_exc


def run_onnxruntime(path: str | os.PathLike, x: torch.Tensor, threads: int = 1) -> np.ndarray:
    """Run an ONNX file on onnxruntime's CPU provider (no spinning threads)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x.numpy()})[0]


def check_onnx(model: nn.Module, path: str | os.PathLike, x: torch.Tensor, rtol: float = 1e-4) -> float:
    """Relative error of onnxruntime vs torch on ``x``; raises :class:`ExportError` above ``rtol``."""
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    actual = run_onnxruntime(path, x)
    err = float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-12))
    if not err <= rtol:
        raise ExportError(f"onnxruntime output differs from torch: relative error {err:.2e} > {rtol:.0e}")
    return err
