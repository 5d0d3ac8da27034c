"""Your own images: an ImageFolder root, read through a DataLoader with workers, at any input size.

Layout: ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*`` (``valid/``, ``validation/`` or ``test/`` stand for
``val/``). A root that holds only class folders (or only ``train/``) is split here, the same way every time.
The scan reads every image's header once: unreadable files are skipped and counted (an error above
:data:`MAX_BAD_FRACTION`), images that are not RGB are converted when read, 16-bit and float images are an
error (converting would clip their values). A folder of ``.npy`` arrays instead of images is read the same
way, each array fed to the model as it is (:mod:`edgeprune.train.arrays`).
"""

from __future__ import annotations

import math
import os
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from edgeprune.errors import DataError, DataNotFoundError, InputError
from edgeprune.models.registry import resized
from edgeprune.train.arrays import ARRAY_SUFFIX, ArrayInput, common_shape, is_array, load_array, probe_array

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
VAL_FOLDERS = ("val", "valid", "validation", "test")
VAL_FRACTION, SPLIT_SEED = 0.1, 0
MAX_BAD_FRACTION = 0.01  # unreadable images above this share of the folder are an error, not a skip
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
EVAL_CROP = 0.875  # eval resizes the short side to size / EVAL_CROP, then center-crops
HIGH_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})  # convert("RGB") clips these to 255


@dataclass(frozen=True)
class FolderSplit:
    files: tuple[str, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class FolderData:
    """A scanned ImageFolder: class names (sorted: the label order), both splits, and what the scan did; for a
    folder of ``.npy`` arrays, the shape every array has."""

    root: Path
    classes: tuple[str, ...]
    train: FolderSplit
    val: FolderSplit
    notes: tuple[str, ...]
    array_shape: tuple[int, ...] | None = None


def scan_folder(root: str | os.PathLike) -> FolderData:
    """Find the splits and classes of ``root`` and check every image's header (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"data folder {root} does not exist")
    notes: list[str] = []
    train_dir = root / "train"
    val_dir = next((root / n for n in VAL_FOLDERS if (root / n).is_dir()), None)
    if train_dir.is_dir() and val_dir is not None:
        train, val = _class_files(train_dir), _class_files(val_dir)
        only_train, only_val = sorted(set(train) - set(val)), sorted(set(val) - set(train))
        if only_train or only_val:
            raise DataError(
                f"class folders differ between {train_dir} and {val_dir}: only in {train_dir.name}/: "
                f"{', '.join(only_train) or '-'}; only in {val_dir.name}/: {', '.join(only_val) or '-'}"
            )
    elif val_dir is not None:
        raise DataError(f"{root} has {val_dir.name}/ but no train/: add {root}/train/<class>/ folders")
    else:
        source = train_dir if train_dir.is_dir() else root
        train, val = split_classes(_class_files(source))
        n_train, n_val = sum(map(len, train.values())), sum(map(len, val.values()))
        notes.append(f"{root} has no val/ folder: split {source} with seed {SPLIT_SEED}, "
                     f"{VAL_FRACTION:.0%} of each class to val: {n_train} train, {n_val} val images")  # fmt: skip
    classes = tuple(sorted(train))
    shape = _check_samples(root, classes, train, val, notes)
    return FolderData(root, classes, _as_split(classes, train), _as_split(classes, val), tuple(notes), shape)


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """{class: sorted image files (any depth)} of ``folder``; empty class folders are an error."""
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subdirs:
        loose = [p for p in folder.iterdir() if _is_sample(p, folder)]
        if loose:
            kind = "arrays" if all(map(is_array, loose)) else "images"
            raise DataError(f"{folder} holds {kind} but no class folders: put each class's {kind} in "
                            f"{folder}/<class>/ (the folder name is the label)")  # fmt: skip
        raise DataError(f"{folder} is empty: expected {folder}/<class>/<image> (or train/ and val/ folders)")
    files = {d.name: sorted(p for p in d.rglob("*") if _is_sample(p, d)) for d in subdirs}
    empty = [c for c, f in files.items() if not f]
    if len(empty) == len(files):
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES | {ARRAY_SUFFIX}))
        raise DataError(f"no images in {folder}: its folders {', '.join(empty[:5])} hold no files ending in {suffixes}")
    if empty:
        raise DataError(f"class folders with no images in {folder}: {', '.join(empty)} (remove them or add images)")
    return files


def open_rgb(path: str | os.PathLike):
    """The image file decoded as RGB (PIL); a :class:`DataError` naming the file where its pixels do not decode
    (the header read at scan time, the pixels do not: a truncated file)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except Exception as exc:
        raise DataError(f"cannot decode {path}: {exc}; remove or replace the file") from None


def loose_images(folder: str | os.PathLike) -> list[Path]:
    """The images at the top of ``folder`` where it has no class folders: a plain folder of images, which is
    enough to calibrate on (no labels needed); [] where it has class folders or no images."""
    folder = Path(folder)
    if not folder.is_dir() or any(d.is_dir() and not d.name.startswith(".") for d in folder.iterdir()):
        return []
    return sorted(p for p in folder.iterdir() if _is_sample(p, folder))


def every_image(folder: str | os.PathLike) -> list[Path]:
    """Every image under ``folder``, at any depth, sorted (hidden files and folders left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(f"data folder {folder} does not exist")
    return sorted(p for p in folder.rglob("*") if _is_sample(p, folder))


def _is_sample(path: Path, base: Path) -> bool:
    """A sample file (an image, or a ``.npy`` array) by its suffix; hidden files and folders
    (.ipynb_checkpoints, ._x.jpg) are not data."""
    hidden = any(part.startswith(".") for part in path.relative_to(base).parts)
    suffix = path.suffix.lower()
    return (suffix in IMAGE_SUFFIXES or suffix == ARRAY_SUFFIX) and not hidden and path.is_file()


def split_classes(files: dict[str, list[Path]]) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Each class's files into (train, val): VAL_FRACTION of them (at least one, if it has two) to val, drawn
    with a seed of the class name, so adding a class never moves another class's images."""
    train, val = {}, {}
    for name, paths in files.items():
        n_val = max(1, round(len(paths) * VAL_FRACTION)) if len(paths) > 1 else 0
        rng = np.random.default_rng([SPLIT_SEED, zlib.crc32(name.encode())])
        chosen = set(rng.permutation(len(paths))[:n_val].tolist())
        train[name] = [p for i, p in enumerate(paths) if i not in chosen]
        val[name] = [p for i, p in enumerate(paths) if i in chosen]
    return train, val


def _probe(path: Path) -> tuple[str | None, str | None]:
    """(mode, None) for an image whose header reads, else (None, why)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.width < 1 or img.height < 1:
                return None, "no pixels"
            return img.mode, None
    except Exception as exc:  # PIL raises many types for a bad file (UnidentifiedImageError, OSError, SyntaxError)
        return None, str(exc) or type(exc).__name__


def _check_samples(root: Path, classes: Sequence[str], train: dict, val: dict,
                   notes: list[str]) -> tuple[int, ...] | None:  # fmt: skip
    """Read every header: drop (and count) unreadable files; images: refuse high-bit ones, note conversions;
    arrays: the one shape they share (returned; None for images). Images and arrays do not mix."""
    paths = [p for split in (train, val) for c in classes for p in split[c]]
    arrays = [p for p in paths if is_array(p)]
    if arrays and len(arrays) < len(paths):
        image = next(p for p in paths if not is_array(p))
        raise DataError(f"{root} mixes images ({image}) and .npy arrays ({arrays[0]}): keep one kind per folder")
    kind = "array" if arrays else "image"
    with ThreadPoolExecutor(8) as pool:
        probes = dict(zip(paths, pool.map(probe_array if arrays else _probe, paths), strict=True))
    bad = {p: why for p, (_, why) in probes.items() if why}
    if len(bad) > MAX_BAD_FRACTION * len(paths):
        shown = "; ".join(f"{p}: {why}" for p, why in list(bad.items())[:3])
        raise DataError(f"{len(bad)} of {len(paths)} {kind}s in {root} cannot be read (more than "
                        f"{MAX_BAD_FRACTION:.0%}): {shown}")  # fmt: skip
    if bad:
        first, why = next(iter(bad.items()))
        notes.append(f"skipped {len(bad)} unreadable {kind}(s) of {len(paths)}, e.g. {first}: {why}")
        for split in (train, val):
            for c in classes:
                split[c] = [p for p in split[c] if p not in bad]
        if empty := [c for c in classes if not train[c]]:
            raise DataError(f"no readable training {kind}s left in class folder(s) {', '.join(empty)} of {root}")
    if arrays:
        return common_shape(root, probes)
    modes = Counter(m for m, _ in probes.values() if m)
    high = sorted(m for m in modes if m in HIGH_BIT_MODES)
    if high:
        example = next(p for p, (m, _) in probes.items() if m in HIGH_BIT_MODES)
        raise DataError(f"{sum(modes[m] for m in high)} image(s) in {root} are 16-bit or float (mode "
                        f"{', '.join(high)}), e.g. {example}: converting them to 8-bit RGB would clip their values; "
                        "convert them to 8-bit first")  # fmt: skip
    converted = {m: k for m, k in sorted(modes.items()) if m != "RGB"}
    if converted:
        counts = ", ".join(f"{k} {m}" for m, k in converted.items())
        notes.append(f"{sum(converted.values())} image(s) are not RGB ({counts}): converted to RGB when read "
                     "(alpha dropped, palettes expanded, grayscale repeated)")  # fmt: skip


def _as_split(classes: Sequence[str], files: dict[str, list[Path]]) -> FolderSplit:
    pairs = [(str(p), k) for k, c in enumerate(classes) for p in files[c]]
    return FolderSplit(tuple(p for p, _ in pairs), tuple(k for _, k in pairs))


@dataclass(frozen=True)
class Preprocess:
    """What a model expects of an image: its side lengths (H, W) and the normalization it was trained with."""

    size: tuple[int, int]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


def model_preprocess(model: torch.nn.Module, entry, side: int | None = None) -> Preprocess:
    """``side`` (else the registry entry's input size); mean and std from the entry where it has them, else the
    model's own pretrained config (timm models carry ``pretrained_cfg``), else ImageNet's. A one-channel model
    (its entry's input size, e.g. a factory's ``input_size = (1, 96, 96)``) reads the images in grayscale,
    normalized by ImageNet's mean and std averaged over the three channels unless it has its own."""
    config = getattr(model, "pretrained_cfg", None) or {}
    mean = tuple(getattr(entry, "mean", None) or config.get("mean") or IMAGENET_MEAN)
    std = tuple(getattr(entry, "std", None) or config.get("std") or IMAGENET_STD)
    channels = entry.input_size[0]
    if channels == 1 and len(mean) == 3:
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    elif channels not in (1, 3) or len(mean) != channels:
        raise InputError(f"{entry.name} takes {channels} input channels: images give 1 (grayscale) or 3 (RGB), "
                         f"normalized by {len(mean)} means; other inputs are read from .npy arrays, one sample "
                         "a file (see edgeprune.train.arrays)")  # fmt: skip
    size = (side, side) if side else tuple(entry.input_size[1:])
    return Preprocess(size, mean, std)


def sample_transform(model: torch.nn.Module, entry, side: int | None, train: bool, arrays: bool):
    """How a folder's samples reach ``model`` (registry ``entry``, input ``side``): ``.npy`` arrays as they are,
    checked against its input shape; images through :func:`folder_transform`, sized and normalized by
    :func:`model_preprocess`."""
    if arrays:
        return ArrayInput(resized(entry.input_size, side))
    pre = model_preprocess(model, entry, side)
    return folder_transform(pre.size, pre.mean, pre.std, train)


def folder_transform(size: tuple[int, int], mean: Sequence[float], std: Sequence[float], train: bool):
    """torchvision v2: random resized crop + flip for training, resize + center crop for evaluation; grayscale
    first where ``mean`` has one channel."""
    from torchvision.transforms import v2

    gray = [v2.Grayscale(1)] if len(mean) == 1 else []
    if train:
        head = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
    else:
        head = [v2.Resize(round(max(size) / EVAL_CROP), antialias=True), v2.CenterCrop(size)]
    return v2.Compose([*gray, *head, v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


class FolderDataset(Dataset):
    """Decoded, transformed images of a split. Items are keyed by (index, epoch): a training image's random
    crop and flip are a function of (seed, epoch, index), whatever the workers, ranks or resume point."""

    def __init__(self, split: FolderSplit, transform, seed: int, train: bool) -> None:
        self.split, self.transform, self.seed, self.train = split, transform, seed, train

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, epoch = key
        path = self.split.files[index]
        sample = load_array(path) if is_array(path) else open_rgb(path)
        if not self.train:
            return self.transform(sample), self.split.labels[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(((self.seed * 1_000_003 + epoch) * 1_000_000_007 + index) % 2**63)
            return self.transform(sample), self.split.labels[index]


def default_workers(world: int = 1) -> int:
    """Decoding workers per process: the CPUs this process may use, shared by the ranks, one left to train."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(8, cpus // world - 1))


class FolderLoader:
    """Batches of a :class:`FolderSplit` through a ``DataLoader``. Training shuffles per epoch and shards across
    DDP ranks (a ``DistributedSampler``, set to each epoch); evaluation reads in order. Same interface as
    :class:`~edgeprune.train.data.ArrayLoader`: ``len()``, iteration, and ``epoch(e, skip)`` for a resume."""

    def __init__(self, split: FolderSplit, transform, batch_size: int, train: bool, seed: int = 0, rank: int = 0,
                 world: int = 1, workers: int | None = None, pin_memory: bool = False) -> None:  # fmt: skip
        if len(split) < world:
            raise DataError(f"{len(split)} images cannot be shared by {world} processes")
        self.dataset = FolderDataset(split, transform, seed, train)
        self.sampler = DistributedSampler(self.dataset, num_replicas=world, rank=rank, shuffle=train, seed=seed,
                                          drop_last=train)  # fmt: skip
        self.batch_size, self.train, self.pin_memory = batch_size, train, pin_memory
        self.workers = default_workers(world) if workers is None else workers

    def indices(self, epoch: int) -> list[int]:
        """This rank's sample indices for ``epoch``, in the order they are read."""
        self.sampler.set_epoch(epoch)
        return list(self.sampler)

    def _batches(self, indices: list[int]) -> list[list[int]]:
        full = len(indices) // self.batch_size
        if self.train and full:  # drop a last partial batch, unless the split holds less than one batch
            indices = indices[: full * self.batch_size]
        return [indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)]

    def __len__(self) -> int:
        n = self.sampler.num_samples
        return max(1, n // self.batch_size) if self.train else math.ceil(n / self.batch_size)

    def batches_per_epoch(self) -> int:
        return len(self)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y) for ``epoch``, from batch ``skip`` on."""
        batches = [[(i, epoch) for i in b] for b in self._batches(self.indices(epoch))[skip:]]
        loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.workers,
                            pin_memory=self.pin_memory)  # fmt: skip
        try:
            yield from loader
        except DataError as exc:  # raised in a worker: keep the message, not the worker's traceback text
            raise DataError(str(exc).rstrip().splitlines()[-1].partition("DataError: ")[2] or str(exc)) from None
