"""Weights from a local file: safetensors, or a torch checkpoint (timm's .pth / .pth.tar, a training script's).

Only tensors are read (``torch.load(weights_only=True)``): no pickled code runs.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn as nn

from edgeprune.errors import InputError, MissingError

# Where checkpoints keep the state dict, in the order tried (timm writes state_dict and state_dict_ema).
STATE_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, with a DataParallel ``module.`` prefix removed."""
    path = Path(path)
    if not path.is_file():
        raise MissingError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(path)
        except SafetensorError as exc:
            raise InputError(f"{path}: not a readable safetensors file ({exc})") from exc
    else:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle, zip and unsupported-global errors all mean "not a weights file"
            raise InputError(f"{path}: not a torch checkpoint of tensors ({type(exc).__name__}: {exc})") from exc
        state = _find_state(blob, path)
    return {k.removeprefix("module."): v for k, v in state.items()}


def _find_state(blob, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(blob, dict):
        for key in STATE_KEYS:
            if isinstance(blob.get(key), dict):
                return blob[key]
        if blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
            return blob
    kind = f"a dict with keys {sorted(blob)[:8]}" if isinstance(blob, dict) else type(blob).__name__
    raise InputError(f"{path}: expected a state dict (or a checkpoint with one of {', '.join(STATE_KEYS)}), got {kind}")


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load a weights file strictly into ``model``; a file for another architecture is an :class:`InputError`
    that names the first mismatching tensors."""
    load_state(model, read_state_dict(path), str(path))


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` strictly into ``model``; an :class:`InputError` names ``source`` and the first mismatches."""
    check_state(model.state_dict(), state, source, type(model).__name__)
    load_versioned(model, state)


def load_versioned(model: nn.Module, state: dict[str, torch.Tensor], strict: bool = True) -> None:
    """``model.load_state_dict(state)`` for a state read from a file that keeps tensors only (safetensors): it
    is given the model's own per-module versions, which some modules' loaders require (torchvision's MNASNet
    refuses a state without them). A BatchNorm of the current version expects its batch counter, which older
    files lack: the model's own (zero) stands in, as BatchNorm's loader does for a file of an older version."""
    if getattr(state, "_metadata", None) is None:
        own = model.state_dict()
        versions = getattr(own, "_metadata", None)
        state = OrderedDict(state)
        if versions is not None:
            for k, v in own.items():
                if k.endswith("num_batches_tracked") and k not in state:
                    state[k] = v
            state._metadata = versions  # type: ignore[attr-defined]
    model.load_state_dict(state, strict=strict)


def check_state(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: str, label: str) -> None:
    """An :class:`InputError` naming the first tensors of ``state`` that are missing from ``own``, extra or
    of another shape (``label``: what ``own`` belongs to)."""
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]  # older files lack it
    extra = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} (model: {tuple(v.shape)})" for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]  # fmt: skip
    if missing or extra or wrong:
        found = (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
        parts = [f"{kind}: {', '.join(v[:3])}{' ...' if len(v) > 3 else ''}" for kind, v in found if v]
        raise InputError(f"{source} does not fit {label}: {'; '.join(parts)}")
