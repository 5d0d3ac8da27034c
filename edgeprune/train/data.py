"""Training data: CIFAR-10 (JPEG tarball here, python batches via torchvision elsewhere), lossless subset,
synthetic; held as uint8 arrays and batched with augmentation on tensors (fast on CPU, deterministic).
Any other ``--data`` is an image folder (:mod:`edgeprune.train.folder`). The trainer takes either loader,
or any iterable of (x, y) batches with ``len()`` (a plain ``DataLoader``): see :func:`epoch_batches`.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgeprune.atomic import atomic_path
from edgeprune.errors import DataNotFoundError, UnknownNameError
from edgeprune.paths import data_root, looked_in

# The normalisation the pretrained CIFAR ResNet checkpoints were trained with.
CIFAR_MEAN = (0.485, 0.456, 0.406)
CIFAR_STD = (0.229, 0.224, 0.225)
LOSSLESS_SUBSET = "cifar10-lossless-subset/cifar10_lossless_subset.npz"
JPEG_TARBALL = "cifar10-jpeg/CIFAR-10-images-d7d0561.tar.gz"
JPEG_ORDER = "cifar10-jpeg/cifar10_original_order_labels.npz"
DATASETS = ("cifar10", "cifar10-torchvision", "cifar10-lossless", "synthetic")


def is_folder(data: str) -> bool:
    """Whether ``data`` is an image folder's path rather than a named data set (a name wins: ./cifar10)."""
    return data not in DATASETS


def check_data(data: str) -> None:
    """A named data set or an existing folder; anything else is an error that says which was expected."""
    if data in DATASETS or Path(data).expanduser().is_dir():
        return
    if os.sep in data or data.startswith(("~", ".")) or Path(data).exists():
        raise DataNotFoundError(f"data folder {data} does not exist (or is not a folder)")
    raise UnknownNameError(f"unknown dataset {data!r}; known: {', '.join(DATASETS)}, or an image folder's path "
                           "(ROOT/train/<class>/*, ROOT/val/<class>/*, or ROOT/<class>/*)")  # fmt: skip


@dataclass
class ArraySplit:
    images: np.ndarray  # uint8 NHWC
    labels: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.labels)


def normalize(images_nhwc_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NHWC images -> normalized float NCHW tensor."""
    x = torch.as_tensor(images_nhwc_uint8).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def load_lossless_subset(split: str = "test", data_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The lossless CIFAR-10 images kept beside the project: (normalized images, labels)."""
    s = load_dataset("cifar10-lossless", data_dir)[0 if split == "train" else 1]
    return normalize(s.images), torch.from_numpy(s.labels)


def load_dataset(name: str, data_dir: str | None = None) -> tuple[ArraySplit, ArraySplit]:
    """(train, test) of a named dataset. ``cifar10`` is the JPEG copy here, the python batches elsewhere."""
    if name == "synthetic":
        rng = np.random.default_rng(0)
        make = lambda n: ArraySplit(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n))  # noqa: E731
        return make(256), make(64)
    if name == "cifar10-lossless":
        path = _find(LOSSLESS_SUBSET, data_dir)
        with np.load(path) as blob:
            return (ArraySplit(blob["x_train"], blob["y_train"].astype(np.int64)),
                    ArraySplit(blob["x_test"], blob["y_test"].astype(np.int64)))  # fmt: skip
    if name == "cifar10":
        root = data_root(data_dir)
        if root is not None and (root / JPEG_TARBALL).is_file():
            return _jpeg_cifar10(root)
        name = "cifar10-torchvision"
    if name == "cifar10-torchvision":
        return _torchvision_cifar10(data_dir)
    raise UnknownNameError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def _find(relative: str, data_dir: str | None) -> Path:
    root = data_root(data_dir)
    if root is None or not (root / relative).is_file():
        raise DataNotFoundError(f"{relative} not found; looked in {looked_in()}")
    return root / relative


def _cache_dir() -> Path:
    return Path(os.environ.get("EDGEPRUNE_CACHE", Path.home() / ".cache" / "edgeprune"))


def _jpeg_cifar10(root: Path) -> tuple[ArraySplit, ArraySplit]:
    """Decode the 60k JPEGs once, in the original CIFAR order, into a cached uint8 array."""
    tarball = root / JPEG_TARBALL
    stat = tarball.stat()
    key = hashlib.sha256(f"{tarball.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    cache = _cache_dir() / f"cifar10-jpeg-{key}.npz"
    if cache.is_file():
        with np.load(cache) as blob:
            return ArraySplit(blob["x_train"], blob["y_train"]), ArraySplit(blob["x_test"], blob["y_test"])
    from PIL import Image

    with np.load(root / JPEG_ORDER) as order:
        labels = {"train": order["y_train"].astype(np.int64), "test": order["y_test"].astype(np.int64)}
        classes = [str(c) for c in order["classes"]]
    files: dict[str, bytes] = {}
    with tarfile.open(tarball) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".jpg"):
                parts = Path(member.name).parts
                files["/".join(parts[-3:])] = tar.extractfile(member).read()
    splits = {}
    for split, y in labels.items():
        seen = dict.fromkeys(range(len(classes)), 0)
        images = np.empty((len(y), 32, 32, 3), np.uint8)
        for i, label in enumerate(y):
            name = f"{split}/{classes[label]}/{seen[label]:04d}.jpg"
            seen[label] += 1
            images[i] = np.asarray(Image.open(io.BytesIO(files[name])).convert("RGB"))
        splits[split] = ArraySplit(images, y)
    with atomic_path(cache) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would rename a path
        np.savez(f, x_train=splits["train"].images, y_train=splits["train"].labels,
                 x_test=splits["test"].images, y_test=splits["test"].labels)  # fmt: skip
    return splits["train"], splits["test"]


def _torchvision_cifar10(data_dir: str | None) -> tuple[ArraySplit, ArraySplit]:
    import torchvision

    folder = Path(data_dir or _cache_dir() / "torchvision")
    try:
        sets = [torchvision.datasets.CIFAR10(str(folder), train=t, download=True) for t in (True, False)]
    except Exception as exc:  # no network, bad mirror, corrupt archive
        raise DataNotFoundError(
            f"CIFAR-10 is not available: the JPEG copy was not found ({looked_in()}) and torchvision's download "
            f"into {folder} failed ({exc}). Set EDGEPRUNE_DATA to a folder holding {JPEG_TARBALL}."
        ) from exc
    return tuple(ArraySplit(np.asarray(s.data), np.asarray(s.targets, dtype=np.int64)) for s in sets)


class ArrayLoader:
    """Batches of an :class:`ArraySplit`, augmented on tensors; exactly reproducible from (seed, epoch).

    Under DDP each rank takes every ``world``-th position of the same permutation, so ``world`` ranks with
    batch b see exactly the samples (and augmentations) one process sees with batch ``world * b``.
    """

    def __init__(self, split: ArraySplit, batch_size: int, train: bool, seed: int = 0, rank: int = 0, world: int = 1):
        self.images = torch.from_numpy(split.images)
        self.labels = torch.from_numpy(split.labels)
        self.batch_size, self.train, self.seed, self.rank, self.world = batch_size, train, seed, rank, world

    def batches_per_epoch(self) -> int:
        n = len(self.labels) // self.world
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)

    def epoch(self, epoch: int, skip: int = 0):
        """Yield (x, y) for ``epoch``, skipping the first ``skip`` batches (resume mid-epoch).

        Shuffling and augmentation are drawn for the whole epoch up front, per position in the epoch's
        permutation: the same sample gets the same flip and crop however the epoch is split across ranks
        or interrupted.
        """
        n = len(self.labels)
        order, flip, dy, dx = torch.arange(n), None, None, None
        if self.train:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(n, generator=g)
            flip = torch.rand(n, generator=g) < 0.5
            dy, dx = torch.randint(0, 9, (n,), generator=g), torch.randint(0, 9, (n,), generator=g)
        positions = torch.arange(n)[self.rank :: self.world]
        for b in range(skip, self.batches_per_epoch()):
            pos = positions[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.images[order[pos]]
            if self.train:
                x = augment(x, flip[pos], dy[pos], dx[pos])
            yield normalize(x), self.labels[order[pos]]


def augment(x: torch.Tensor, flip: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Horizontal flip and 4-pixel pad-and-crop of NHWC uint8 images, with given per-image draws."""
    n, h, w, _ = x.shape
    x = torch.where(flip[:, None, None, None], x.flip(2), x)
    padded = torch.nn.functional.pad(x.permute(0, 3, 1, 2), (4, 4, 4, 4)).permute(0, 2, 3, 1)
    rows = (dy[:, None] + torch.arange(h)[None])[:, :, None]
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, :]
    return padded[torch.arange(n)[:, None, None], rows, cols]


def epoch_batches(loader: Iterable, epoch: int, skip: int = 0) -> Iterator:
    """The (x, y) batches of ``epoch``, from batch ``skip`` on, of any loader: edgeprune's (reproducible per
    epoch), or an iterable with ``len()`` such as a ``DataLoader`` (its sampler's ``set_epoch`` is called, so a
    ``DistributedSampler`` reshuffles; a resume skips batches by reading them)."""
    if hasattr(loader, "epoch"):
        return loader.epoch(epoch, skip=skip)
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    return itertools.islice(iter(loader), skip, None)
