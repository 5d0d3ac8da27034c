"""Samples stored as NumPy arrays: a data folder of ``.npy`` files instead of images.

A model that takes no images (a keyword spotter reading 40 MFCC features by 101 frames, a sensor model, a
multispectral camera's) is trained, scored and calibrated on arrays laid out as image folders are
(``ROOT/train/<class>/*.npy``, ``ROOT/val/<class>/*.npy``, or a plain folder of them to calibrate on). Each file
holds one sample, shaped as the model's input without the batch dim, already preprocessed: it is fed as it is
(cast to float32), with no resizing, normalization or augmentation.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from edgeprune.errors import DataError

ARRAY_SUFFIX = ".npy"


def is_array(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(ARRAY_SUFFIX)


def probe_array(path: Path) -> tuple[tuple[int, ...] | None, str | None]:
    """(shape, None) for a ``.npy`` file holding numbers, else (None, why). Reads the header only."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError... for a bad file
        return None, str(exc) or type(exc).__name__
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        return None, f"dtype {array.dtype} is not numeric"
    return tuple(int(v) for v in array.shape), None


def common_shape(root: Path, probes: dict[Path, tuple[tuple[int, ...] | None, str | None]]) -> tuple[int, ...]:
    """The one shape the readable arrays of ``root`` share (``probes``: :func:`probe_array` of each file);
    differing shapes are an error naming an example of the rarer one."""
    shapes = Counter(s for s, _ in probes.values() if s is not None)
    if len(shapes) > 1:
        (common, _), (other, _) = shapes.most_common(2)
        example = next(p for p, (s, _) in probes.items() if s == other)
        raise DataError(f"the arrays in {root} differ in shape: {shapes[common]} are {common}, {shapes[other]} "
                        f"{other} (e.g. {example}); every sample must have the model's input shape")  # fmt: skip
    return next(iter(shapes))


def load_array(path: str | os.PathLike) -> np.ndarray:
    """A sample file's array; a :class:`DataError` naming the file where it does not load."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"cannot load {path}: {exc}; remove or replace the file") from None


class ArrayInput:
    """The transform of array samples: float32, checked against the model's input shape (no resizing)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def __call__(self, array: np.ndarray) -> torch.Tensor:
        if tuple(array.shape) != self.shape:
            raise DataError(f"a sample of shape {tuple(array.shape)} for a model that takes {self.shape}: store "
                             "each sample as the model's input without the batch dim")  # fmt: skip
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
