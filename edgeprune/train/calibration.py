"""Calibration images for int8 targets and for calibrated pruning: real images of the user's data, preprocessed as
the model sees them at evaluation. The int8 backends take them as an array (:mod:`edgeprune.backends.quantize`),
pruning as a tensor (:func:`edgeprune.prune.calibrate.measure_channels`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from edgeprune.backends.quantize import require_count
from edgeprune.models import get_entry
from edgeprune.models.ultralytics_models import FAMILY as DETECTOR
from edgeprune.train.data import check_data, is_folder, load_dataset, normalize

SEED = 0  # which images calibrate: a seeded draw over the split, so every class is represented


def _draw(total: int, count: int) -> np.ndarray:
    return np.sort(np.random.default_rng(SEED).permutation(total)[:count])


def calibration_images(data: str, count: int, model: nn.Module, name: str, side: int | None = None,
                       data_dir: str | None = None) -> np.ndarray:  # fmt: skip
    """``count`` images (N, C, H, W float32) of ``data``, preprocessed as ``model`` (registry name ``name``, input
    side ``side``) is evaluated: a named data set's train split; an image folder's train split (without one: its
    val split), or, a plain folder of images with no class folders, those images (labels are not needed here). A
    detector reads RGB in [0, 1] resized to ``side``: the train images of a dataset yaml, or every image of a
    folder. Fewer images than ``count``: an error that names the count needed."""
    from edgeprune.train import folder as folders
    from edgeprune.train.detect_data import detection_images, is_detection_data, square_images

    if is_detection_data(data):
        return detection_images(data, count, side or get_entry(name).input_size[-1])
    check_data(data)
    if not is_folder(data):
        split = load_dataset(data, data_dir)[0]
        require_count(len(split), count, f"{data}'s train split")
        return normalize(split.images[_draw(len(split), count)]).numpy()
    entry = get_entry(name)
    if entry.family == DETECTOR:  # RGB in [0, 1], not the classifiers' normalization, whatever the folder's layout
        files = folders.every_image(data)
        require_count(len(files), count, str(data))
        return square_images([files[i] for i in _draw(len(files), count)], side or entry.input_size[-1])
    if loose := folders.loose_images(data):
        images, where = folders.FolderSplit(tuple(map(str, loose)), (0,) * len(loose)), str(data)
    else:
        folder = folders.scan_folder(data)
        images, which = (folder.train, "train") if len(folder.train) else (folder.val, "val")
        where = f"{folder.root}'s {which} split"
    require_count(len(images), count, where)
    transform = folders.sample_transform(model, entry, side, False, folders.is_array(images.files[0]))
    dataset = folders.FolderDataset(images, transform, SEED, False)
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
