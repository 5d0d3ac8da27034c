"""Post-training INT8 shared by the int8 backends: calibration samples, and ONNX Runtime's static QDQ quantization.

Where calibration images come from: the deployed model (``edgeprune validate``) is calibrated on real images
from the user's data, loaded by :func:`edgeprune.train.calibration.calibration_images` and passed in as an
array. Timing-only runs (profiling micro-models and calibration plans, measured budget rounds) pass none and
are calibrated on a few random inputs: calibration sets the scales and zero points, not which nodes the
quantized graph has, so the latency is the same (tests/test_int8.py checks that the graphs match).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeprune.atomic import atomic_path
from edgeprune.backends.base import BackendError
from edgeprune.errors import EdgepruneError
from edgeprune.logs import quiet
from edgeprune.targets import CALIBRATION_METHODS, Target

RANDOM_SAMPLES = 8  # timing-only calibration: the values do not change the graph, few samples quantize fast
CALIBRATION_BATCH = 32
# a dynamic-batch model calibrates on batches of at most this many input pixels (one 640² image): onnxruntime
# holds every activation of a batch at once, which for a detector at 640² outgrows a laptop's memory
CALIBRATION_PIXELS = 2**19


class CalibrationError(EdgepruneError, ValueError):
    """Calibration images that are missing, too few, or not shaped like the model's input."""


class QuantizationError(BackendError):
    """The quantizer failed, or the runtime refused the quantized model."""


def require_count(have: int, need: int, source: str) -> None:
    """Refuse calibration with fewer than ``need`` images, naming the count needed (the one message for it)."""
    if have < need:
        raise CalibrationError(f"calibration needs {need} images but {source} has {have}: give more images, "
                               "or calibrate on fewer (--calibration-count N, or calibration_count in "
                               "the target)")  # fmt: skip


def random_samples(input_shape: tuple[int, ...], count: int = RANDOM_SAMPLES) -> np.ndarray:
    """Seeded random inputs, one per row, shaped like one image of ``input_shape`` (timing only)."""
    return np.random.default_rng(0).standard_normal((count, *input_shape[1:]), dtype=np.float32)


def calibration_for(target: Target, images: np.ndarray | None, input_shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """The samples to calibrate on and what they are ("images" or "random"): ``images`` (N, C, H, W) checked
    against the target's count and the input shape, or random inputs when none were given."""
    if images is None:
        return random_samples(input_shape), "random"
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != len(input_shape) or images.shape[1:] != tuple(input_shape[1:]):
        expected = ", ".join(map(str, input_shape[1:]))
        raise CalibrationError(f"calibration images of shape {list(images.shape)} do not fit the model's input "
                               f"{list(input_shape)} (expected [N, {expected}])")  # fmt: skip
    require_count(len(images), target.calibration_count, "the calibration set given")
    return images[: target.calibration_count], "images"


def onnx_input(path: str | Path) -> tuple[str, tuple[int, ...]]:
    """The first graph input's name and shape (0 for a symbolic dimension, such as a dynamic batch)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    known = {i.name for i in graph.initializer}
    first = next(i for i in graph.input if i.name not in known)
    return first.name, tuple(max(d.dim_value, 0) for d in first.type.tensor_type.shape.dim)


def calibration_batches(samples: np.ndarray, batch: int) -> list[np.ndarray]:
    """``samples`` (N, C, H, W) as the batches a model takes: of ``batch`` samples for a fixed batch size (the
    remainder left out, fewer samples repeated), for a dynamic one (``batch`` 0) of up to CALIBRATION_BATCH
    samples and CALIBRATION_PIXELS pixels (at least one sample)."""
    samples = np.ascontiguousarray(samples, np.float32)
    if not batch:
        step = max(1, min(CALIBRATION_BATCH, CALIBRATION_PIXELS // max(1, int(np.prod(samples.shape[2:])))))
        return [samples[i : i + step] for i in range(0, len(samples), step)]
    if len(samples) < batch:
        samples = np.resize(samples, (batch, *samples.shape[1:]))
    return [samples[i : i + batch] for i in range(0, len(samples) - batch + 1, batch)]


def is_quantized(path: str | Path) -> bool:
    """Whether an ONNX file already holds QuantizeLinear nodes (a quantized artifact, not an fp32 export)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(n.op_type == "QuantizeLinear" for n in graph.node)


def artifact_path(source: str | Path, suffix: str) -> Path:
    """Where the int8 artifact of ``source`` is written: beside it, ``model.onnx`` -> ``model<suffix>``."""
    source = Path(source)
    return source.with_name(source.stem + suffix)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over batches of samples; ``set_range`` lets the quantizer
    collect a few batches at a time (its strided calibration), which bounds the memory every method takes."""

    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self.feeds = [{name: b} for b in batches]
        self.set_range(0, len(self.feeds))

    def __len__(self) -> int:
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.batches = iter(self.feeds[start_index:end_index])

    def get_next(self) -> dict | None:
        return next(self.batches, None)

    def __iter__(self):  # newer onnxruntime iterates the reader
        return iter(self.get_next, None)


_BINS = "finite-sized bins"  # numpy's histogram error for a range too narrow for its bins


def quantize_onnx(source: str | Path, out: str | Path, samples: np.ndarray, method: str = "minmax",
                  keep_fp32: Sequence[str] = ()) -> Path:  # fmt: skip
    """Static INT8 quantization of the fp32 ONNX ``source`` into ``out``: QDQ format, per-channel int8
    weights, uint8 activations with ranges calibrated on ``samples`` (N, C, H, W) by ``method``: ``minmax``
    (the widest value seen), ``entropy`` or ``percentile`` (histograms that clip rare outliers). Activations
    are collected one batch at a time (:func:`calibration_batches`) and onnxruntime merges the batches' ranges
    or histograms as it goes, so no method holds every image's activations at once. minmax gives the ranges of
    one pass; the histogram methods re-bin as they merge, so their ranges move a little with the batching. A
    histogram method that cannot bin a nearly constant activation falls back to minmax, with a warning.
    ``keep_fp32``: names of ``source``'s nodes left unquantized (they run in float, as in the fp32 model).

    Written to a temporary file and renamed onto ``out`` only when the quantization succeeded, so a failure
    leaves a previous ``out`` as it was.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in CALIBRATION_METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; expected one of {CALIBRATION_METHODS}")
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]  # fmt: skip
    name, shape = onnx_input(source)
    out = Path(out)
    try:
        # the histogram calibrators print their progress: kept off stdout, which may carry --json output
        with atomic_path(out) as tmp, quiet(), contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(source), str(tmp), _Reader(name, calibration_batches(samples, shape[0])),
                            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=calibrate,
                            nodes_to_exclude=list(keep_fp32), extra_options={"CalibStridedMinMax": 1})  # fmt: skip
    except EdgepruneError:
        raise
    except Exception as exc:  # the quantizer raises whatever its numpy/onnx internals raise
        if method != "minmax" and isinstance(exc, ValueError) and _BINS in str(exc):
            # numpy cannot cut a range a few float steps wide into the histogram's bins: an activation that is
            # nearly constant on these samples (a saturated gate, a model with random weights). onnxruntime
            # calibrates all tensors in one pass, so the whole model falls back to minmax.
            warnings.warn(f"{Path(source).name}: {method} calibration cannot bin an activation that is nearly "
                          "constant on the calibration samples; every tensor calibrated by minmax instead (no "
                          "outliers clipped)", stacklevel=2)  # fmt: skip
            return quantize_onnx(source, out, samples, "minmax", keep_fp32)
        raise QuantizationError(f"onnxruntime could not quantize {Path(source).name}: {type(exc).__name__}: "
                                f"{exc}"[:500]) from exc  # fmt: skip
    return out
