"""From ``--data`` (a named data set or an image folder) to the loaders, and to a model that fits the folder:
a registry model gets a head of the folder's class count, a saved model must already answer that many."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from edgeprune.errors import InputError
from edgeprune.models import create_model, get_entry
from edgeprune.models.registry import Pretrained, resized
from edgeprune.models.weights import load_versioned
from edgeprune.prune import load_model_ref
from edgeprune.train.data import ArrayLoader, is_folder, load_dataset
from edgeprune.train.folder import DataError, FolderData, FolderLoader, sample_transform, scan_folder
from edgeprune.train.trainer import evaluate

EVAL_BATCH = 256


@dataclass
class Source:
    """The data of a run: the scanned folder (None for a named data set), the input side, what to tell."""

    data: str
    folder: FolderData | None
    side: int | None = None  # --input-size; None: the model's registry input size
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, data: str, side: int | None = None) -> Source:
        """Scan ``data`` if it is a folder (every rank does: the scan is deterministic)."""
        if not is_folder(data):
            return cls(data, None)
        folder = scan_folder(data)
        return cls(data, folder, side, list(folder.notes))

    def chw(self, name: str) -> tuple[int, ...]:
        """The input shape the model sees: a named data set keeps the registry's (CIFAR: 32²)."""
        return resized(get_entry(name).input_size, self.side if self.folder is not None else None)

    def transform(self, model: nn.Module, name: str, train: bool):
        """How the folder's samples reach ``model`` (:func:`~edgeprune.train.folder.sample_transform`)."""
        arrays = self.folder.array_shape is not None
        return sample_transform(model, get_entry(name), self.side, train, arrays)

    def tell(self, rank: int = 0) -> None:
        """Print the notes once (rank 0), to stderr: the result on stdout stays machine-readable."""
        if rank == 0:
            for note in self.notes:
                print(f"note: {note}", file=sys.stderr)

    def record(self, name: str) -> dict:
        """What run.json keeps about the data."""
        if self.folder is None:
            return {}
        return {"classes": list(self.folder.classes), "input_size": list(self.chw(name)[1:]), "data_notes": self.notes}


def class_count(model: nn.Module, chw: tuple[int, ...]) -> int:
    """How many class scores ``model`` answers for one image (eval mode, no gradient)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, *chw))
    model.train(was)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise DataError(f"the model answers {type(out).__name__} {getattr(out, 'shape', '')}, not class scores")
    return int(out.shape[1])


def check_classes(model: nn.Module, label: str, chw: tuple[int, ...], folder: FolderData) -> None:
    k, n = class_count(model, chw), len(folder.classes)
    if k != n:
        raise DataError(f"{label} answers {k} classes but {folder.root} has {n} class folders: use a model "
                        "trained on these classes, or train a registry model on the folder (its head is sized from "
                        "it)")  # fmt: skip


def check_trainable(ref: str, pretrained: Pretrained) -> None:
    """A registry model built in its deploy form (timm's RepVGG, MobileOne: branches and norms fused) from random
    weights has no norms left to train with, and diverges: an :class:`InputError` saying what to start from."""
    if pretrained or Path(ref).is_dir():
        return
    entry = get_entry(ref)
    if entry.deploy_form is None:
        return
    training = create_model(ref, reparameterize=False)
    before = sum(p.numel() for p in training.parameters())
    if sum(p.numel() for p in entry.deploy_form(training).parameters()) == before:
        return  # nothing fused: the model trains as built
    raise InputError(
        f"{ref} is built as it is deployed, its branches and norms fused, and trained from random weights that "
        "form diverges (no norms are left): start from trained weights (--pretrained or --weights FILE), or train "
        f"the training form with your own loop (Python: create_model({ref!r}, reparameterize=False))"
    )


def load_for_data(ref: str, pretrained: Pretrained, source: Source) -> tuple[nn.Module, str, dict, dict]:
    """``load_model_ref``, fitted to a folder's classes: a registry model whose head answers another count is
    rebuilt with ``num_classes`` (with ``pretrained``, every weight but the head's is kept)."""
    check_trainable(ref, pretrained)
    if source.folder is None:
        return load_model_ref(ref, pretrained)
    if Path(ref).is_dir():
        model, name, kwargs, changes = load_model_ref(ref)
        check_classes(model, ref, source.chw(name), source.folder)
        return model, name, kwargs, changes
    entry, n = get_entry(ref), len(source.folder.classes)
    kwargs = {entry.size_kwarg: source.side} if entry.size_kwarg and source.side else {}
    if not isinstance(pretrained, bool):  # a weights file, perhaps with a head for these classes already
        try:
            return create_model(ref, pretrained, **kwargs, num_classes=n), ref, {**kwargs, "num_classes": n}, {}
        except (InputError, TypeError):
            pass  # another head (or no num_classes): the backbone is kept below, the head is new
    model = create_model(ref, pretrained, **kwargs)
    k = class_count(model, source.chw(ref))
    if k == n:
        return model, ref, kwargs, {}
    try:
        fresh = create_model(ref, **kwargs, num_classes=n)
    except TypeError as exc:
        raise DataError(f"{ref} answers {k} classes, {source.folder.root} has {n} class folders, and the model "
                        f"takes no num_classes ({exc})") from exc  # fmt: skip
    if pretrained:
        new = keep_matching(model, fresh)
        source.notes.append(f"{ref}: a new {n}-class head ({', '.join(new)}); every other weight is pretrained")
    return fresh, ref, {**kwargs, "num_classes": n}, {}


def keep_matching(source: nn.Module, target: nn.Module) -> list[str]:
    """Copy every tensor of ``source`` whose name and shape ``target`` shares; returns the names left as built."""
    wanted = target.state_dict()
    kept = {k: v for k, v in source.state_dict().items() if k in wanted and wanted[k].shape == v.shape}
    load_versioned(target, kept, strict=False)  # a plain dict: without the module versions MNASNet requires
    return sorted(set(wanted) - set(kept))


def make_loaders(
    source: Source, model: nn.Module, name: str, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1,
    workers: int | None = None, data_dir: str | None = None,
) -> tuple[Iterable, Iterable | None]:  # fmt: skip
    """(train, test) loaders: uint8 arrays for a named data set, a DataLoader over the folder otherwise."""
    if source.folder is None:
        train, test = load_dataset(source.data, data_dir)
        return ArrayLoader(train, batch_size, True, seed, rank, world), ArrayLoader(test, EVAL_BATCH, False)
    pin = torch.cuda.is_available()
    train = FolderLoader(source.folder.train, source.transform(model, name, True), batch_size, True, seed, rank, world,
                         workers, pin)  # fmt: skip
    test = None
    if len(source.folder.val):
        test = FolderLoader(source.folder.val, source.transform(model, name, False), EVAL_BATCH, False,
                            workers=workers, pin_memory=pin)  # fmt: skip
    return train, test


def folder_eval_loader(model: nn.Module, name: str, source: Source, split: str = "test",
                       workers: int | None = None) -> FolderLoader:  # fmt: skip
    """Evaluation batches of a folder's val split (``split="train"``: its train split, without augmentation)."""
    folder = source.folder
    check_classes(model, name, source.chw(name), folder)
    images = folder.train if split == "train" else folder.val
    if not len(images):
        raise DataError(f"{folder.root} has no {split} images to evaluate on")
    return FolderLoader(images, source.transform(model, name, False), EVAL_BATCH, False, workers=workers)


def folder_accuracy(model: nn.Module, name: str, data: str, split: str = "test", side: int | None = None,
                    workers: int | None = None) -> float:  # fmt: skip
    """Top-1 accuracy of ``model`` (registry name ``name``) on an image folder's val split, on the CPU."""
    source = Source.open(data, side)
    source.tell()
    return evaluate(model, folder_eval_loader(model, name, source, split, workers), torch.device("cpu"))
