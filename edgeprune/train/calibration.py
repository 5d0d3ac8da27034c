"""Calibration images for int8 targets and for calibrated pruning: real images of the user's data, preprocessed as
the model sees them at evaluation. The int8 backends take them as an array (:mod:`edgeprune.backends.quantize`),
pruning as a tensor (:func:`edgeprune.prune.calibrate.measure_channels`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from edgeprune.backends.quantize import require_count
from edgeprune.models import get_entry
from edgeprune.train.data import check_data, is_folder, load_dataset, normalize

SEED = 0  # which images calibrate: a seeded draw over the split, so every class is represented


def _draw(total: int, count: int) -> np.ndarray:
    return np.sort(np.random.default_rng(SEED).permutation(total)[:count])


def calibration_images(data: str, count: int, model: nn.Module, name: str, side: int | None = None,
                       data_dir: str | None = None) -> np.ndarray:  # fmt: skip
    """``count`` images (N, C, H, W float32) of ``data``, a named data set or an image folder: drawn from its
    train split (a folder without one: its val split), preprocessed as ``model`` (registry name ``name``, input
    side ``side``) is evaluated. Fewer images than ``count``: a :class:`~edgeprune.backends.CalibrationError`
    that names the count needed. A dataset yaml (a detector's): its train images resized to ``side``."""
    from edgeprune.train.detect_data import detection_images, is_detection_data

    if is_detection_data(data):
        return detection_images(data, count, side or get_entry(name).input_size[-1])
    check_data(data)
    if not is_folder(data):
        split = load_dataset(data, data_dir)[0]
        require_count(len(split), count, f"{data}'s train split")
        return normalize(split.images[_draw(len(split), count)]).numpy()
    from edgeprune.train.folder import FolderDataset, folder_transform, model_preprocess, scan_folder

    folder = scan_folder(data)
    images, which = (folder.train, "train") if len(folder.train) else (folder.val, "val")
    require_count(len(images), count, f"{folder.root}'s {which} split")
    pre = model_preprocess(model, get_entry(name), side)
    dataset = FolderDataset(images, folder_transform(pre.size, pre.mean, pre.std, False), SEED, False)
    return np.stack([dataset[(int(i), 0)][0].numpy() for i in _draw(len(images), count)])


CALIBRATION_COUNT = 64  # images that calibrated pruning measures on (YOLOv8n: 64 at 640 take about 30 s)


def calibration_loader(data: str | None, count: int | None = None):
    """What :func:`edgeprune.plan.run.prune_run` takes as ``calibration``: ``count`` (default
    :data:`CALIBRATION_COUNT`) train images of ``data`` (a named data set, an image folder or a detector's dataset
    yaml), loaded once the model is known; None without data."""
    if data is None:
        return None
    count = count or CALIBRATION_COUNT

    def load(model: nn.Module, name: str, side: int) -> torch.Tensor:
        return torch.from_numpy(calibration_images(data, count, model, name, side))

    return load
