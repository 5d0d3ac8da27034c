"""CIFAR-10 data found beside the project (see edgeprune.paths)."""

from __future__ import annotations

import numpy as np
import torch

from edgeprune.paths import data_root, looked_in

# The normalisation the pretrained CIFAR ResNet checkpoints were trained with.
CIFAR_MEAN = (0.485, 0.456, 0.406)
CIFAR_STD = (0.229, 0.224, 0.225)
LOSSLESS_SUBSET = "cifar10-lossless-subset/cifar10_lossless_subset.npz"


def normalize(images_nhwc_uint8: np.ndarray) -> torch.Tensor:
    """uint8 NHWC images -> normalized float NCHW tensor."""
    x = torch.from_numpy(images_nhwc_uint8).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def load_lossless_subset(split: str = "test", data_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The lossless CIFAR-10 images kept beside the project: (normalized images, labels)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = data_root(data_dir)
    path = root / LOSSLESS_SUBSET if root else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"{LOSSLESS_SUBSET} not found; looked in {looked_in()}")
    with np.load(path) as blob:
        return normalize(blob[f"x_{split}"]), torch.from_numpy(blob[f"y_{split}"].astype(np.int64))
