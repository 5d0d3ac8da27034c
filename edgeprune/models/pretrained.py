"""Loading the pretrained CIFAR-10 ResNet checkpoints shipped beside the project (never in git)."""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from edgeprune.errors import DataNotFoundError
from edgeprune.models.weights import load_weights
from edgeprune.paths import data_root, looked_in

CHECKPOINT_DIR = Path("pretrained") / "cifar10-resnet"


def find_cifar_resnet_checkpoint(depth: int, data_dir: str | None = None) -> Path:
    """Path of ``resnet{depth}-*.th``; a clear error says where it looked."""
    root = data_root(data_dir)
    if root is not None:
        hits = sorted((root / CHECKPOINT_DIR).glob(f"resnet{depth}-*.th"))
        if hits:
            return hits[0]
    raise DataNotFoundError(
        f"no pretrained checkpoint resnet{depth}-*.th under <data>/{CHECKPOINT_DIR}; looked in {looked_in()}."
        " Point EDGEPRUNE_DATA at a folder holding pretrained/cifar10-resnet/ (the checkpoints of"
        " akamaster/pytorch_resnet_cifar10)."
    )


def load_cifar_resnet_checkpoint(model: nn.Module, depth: int, data_dir: str | None = None) -> None:
    """Load ``{'state_dict': {'module.…': …}}`` strictly into ``model`` (tensors only, no pickled code)."""
    load_weights(model, find_cifar_resnet_checkpoint(depth, data_dir))
