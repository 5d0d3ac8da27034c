"""Save and reload pruned models as an architecture spec (JSON) + weights (safetensors). No pickles."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn.utils import parametrize

from edgeprune.atomic import atomic_path, atomic_write_text
from edgeprune.errors import EdgepruneError, MissingError
from edgeprune.graph.groups import rnn_input_weights
from edgeprune.models import ChannelRemap, create_model, get_entry
from edgeprune.models.layers import BranchConstant, EmptyChannels
from edgeprune.models.registry import Pretrained, resized
from edgeprune.models.weights import load_versioned
from edgeprune.prune.shrink import ArchChanges

ARCH_SCHEMA = "edgeprune.arch/1"
ARCH_FILE, WEIGHTS_FILE = "arch.json", "weights.safetensors"
# What may stand in for a layer of a removed residual branch (prune/shrink.py: remove_branch).
REPLACEMENTS = {"EmptyChannels": EmptyChannels, "BranchConstant": BranchConstant, "Identity": nn.Identity}


class ArchSpecError(EdgepruneError, ValueError):
    """An arch spec or weights file that cannot rebuild a model."""


def arch_spec(model_name: str, model_kwargs: dict, source_fingerprint: str, changes: ArchChanges,
              input_size: tuple[int, ...] | None = None) -> dict:  # fmt: skip
    """The JSON document that, with the weights, rebuilds a pruned model from its registry name.

    ``input_size`` (C, H, W), or (C, L), is kept when the model works at another size than its registry entry's (trained
    on an image folder at ``--input-size``): every later stage then plans, exports and times it at that size.
    """
    spec = {
        "schema": ARCH_SCHEMA,
        "model": model_name,
        "model_kwargs": model_kwargs,
        "source_fingerprint": source_fingerprint,
        "changes": changes,
    }
    if input_size is not None and tuple(input_size) != default_input_chw(model_name, model_kwargs):
        spec["input_size"] = [int(v) for v in input_size]
    return spec


def default_input_chw(name: str, kwargs: dict) -> tuple[int, ...]:
    """The registry's input shape of ``name`` built with ``kwargs`` (a size-bound model's size argument wins):
    (C, H, W), or (C, L) for a sequence model."""
    entry = get_entry(name)
    if entry.size_kwarg and entry.size_kwarg in kwargs:
        return resized(entry.input_size, int(kwargs[entry.size_kwarg]))
    return tuple(entry.input_size)


def _saved_spec(ref: str | os.PathLike) -> dict:
    """The arch spec of a saved model folder (or a training run's ``model/``); {} for a registry name, or for a
    spec that does not read (load_pruned reports a broken spec with its own message)."""
    path = Path(ref)
    for arch in (path / ARCH_FILE, path / "model" / ARCH_FILE):
        if arch.is_file():
            try:
                spec = json.loads(arch.read_text())
            except json.JSONDecodeError:
                return {}
            return spec if isinstance(spec, dict) else {}
    return {}


def saved_input_size(ref: str | os.PathLike) -> tuple[int, ...] | None:
    """The input size recorded in a saved model folder (or a training run's ``model/``), else None."""
    size = _saved_spec(ref).get("input_size")
    return tuple(int(v) for v in size) if size else None


def registry_name(ref: str | os.PathLike) -> str:
    """The registry name behind ``ref``: a saved model folder's (or training run's) model, else ``ref`` itself."""
    return str(_saved_spec(ref).get("model") or ref)


def saved_side(ref: str | os.PathLike) -> int | None:
    """The square side (a sequence's length) saved with a model folder, else None."""
    size = saved_input_size(ref)
    return size[1] if size else None


def input_chw(ref: str | os.PathLike, name: str, kwargs: dict, side: int | None = None) -> tuple[int, ...]:
    """The input shape the model ``ref`` (loaded as registry ``name`` with ``kwargs``) works at, (C, H, W) or a
    sequence model's (C, L): ``side`` for every spatial dim when given, else the size saved with a model
    folder, else the registry's."""
    return resized(saved_input_size(ref) or default_input_chw(name, kwargs), side)


def save_pruned(model: nn.Module, spec: dict, out_dir: str | os.PathLike) -> Path:
    """Write ``arch.json`` and ``weights.safetensors`` into ``out_dir``, each atomically.

    A model with an ``arch_kwargs()`` method (an Ultralytics model read from a checkpoint) adds what rebuilds
    its architecture without the file it came from to the spec's ``model_kwargs``."""
    if callable(getattr(model, "arch_kwargs", None)):
        spec = {**spec, "model_kwargs": {**model.arch_kwargs(), **spec.get("model_kwargs", {})}}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state, aliases = _unique_tensors(model)
    metadata = {"schema": ARCH_SCHEMA, "model": spec["model"], "aliases": json.dumps(aliases)}
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    atomic_write_text(out / ARCH_FILE, json.dumps(spec, indent=1))
    return out


def apply_arch(model: nn.Module, changes: ArchChanges) -> None:
    """Resize a freshly built model's modules to the pruned architecture (weights left uninitialized)."""
    for path, attrs in changes.items():
        if "param_shape" in attrs:
            owner_path, _, name = path.rpartition(".")
            _resize_tensor(model.get_submodule(owner_path), name, attrs["param_shape"])
            continue
        module = model.get_submodule(path)
        if "replaces" in attrs:
            _replace_module(model, path, attrs)
            continue
        if type(module).__name__ != attrs["type"]:
            found = type(module).__name__
            raise ArchSpecError(f"{path} is a {found} in the model but {attrs['type']} in the spec")
        for key, value in attrs.items():
            if key == "type":
                continue
            if key == "bias":  # compensation gave a bias-free layer one (prune/shrink.py: compensate)
                if value and module.bias is None:
                    module.bias = nn.Parameter(torch.empty(0))  # sized below
            elif key == "index" and isinstance(module, ChannelRemap):
                module.index = torch.tensor(value, dtype=torch.long)
            elif isinstance(getattr(module, key, None), tuple):  # JSON has no tuples: a split-size tuple stays one
                setattr(module, key, tuple(value))
            else:
                setattr(module, key, value)
        for name, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
            if name == "index" or tensor is None:
                continue
            shape = _expected_shape(module, name, tensor)
            if tuple(shape) != tuple(tensor.shape):
                _resize_tensor(module, name, shape)
        if parametrize.is_parametrized(module):
            _resize_parametrized(module)


def _resize_parametrized(module: nn.Module) -> None:
    """A parametrized weight (weight norm: ``g`` and ``v``) is stored as its originals: each is resized along
    the dims it shares with the weight (``v`` whole, ``g`` along the output channels)."""
    for name, originals in module.parametrizations.items():
        weight = getattr(module, name)
        shape = _expected_shape(module, name, weight)
        if tuple(shape) == tuple(weight.shape):
            continue
        for key, tensor in [*originals.named_parameters(recurse=False), *originals.named_buffers(recurse=False)]:
            if tensor.dim() == weight.dim():
                new = [n if t == w else t for t, w, n in zip(tensor.shape, weight.shape, shape, strict=True)]
                _resize_tensor(originals, key, new)


def _replace_module(model: nn.Module, path: str, attrs: dict) -> None:
    """A layer of a removed residual branch: build its stand-in (weights come with load_state_dict)."""
    found, wanted = type(model.get_submodule(path)).__name__, attrs["replaces"]
    if found != wanted:
        raise ArchSpecError(f"{path} is a {found} in the model but the spec replaces a {wanted}")
    kind, args = attrs["type"], {k: v for k, v in attrs.items() if k not in ("type", "replaces")}
    if kind not in REPLACEMENTS:
        raise ArchSpecError(f"{path}: unknown replacement {kind!r} (known: {', '.join(REPLACEMENTS)})")
    try:
        model.set_submodule(path, REPLACEMENTS[kind](**args))
    except TypeError as exc:
        raise ArchSpecError(f"{path}: cannot build {kind} from {args}: {exc}") from exc


def _resize_tensor(owner: nn.Module, name: str, shape) -> None:
    """Replace a parameter or buffer by an uninitialized one of ``shape`` (load_state_dict fills it)."""
    old = getattr(owner, name)
    new = torch.empty(tuple(shape), dtype=old.dtype)
    setattr(owner, name, nn.Parameter(new, old.requires_grad) if isinstance(old, nn.Parameter) else new)


def _expected_shape(module: nn.Module, name: str, tensor: torch.Tensor) -> tuple[int, ...]:
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        if name == "weight":
            return (module.in_channels, module.out_channels // module.groups, *tensor.shape[2:])
        return (module.out_channels,) if name == "bias" else tuple(tensor.shape)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if name == "weight":
            return (module.out_channels, module.in_channels // module.groups, *tensor.shape[2:])
        if name == "bias":
            return (module.out_channels,)
        return tuple(tensor.shape)  # a subclass's own tensors (a gain) are resized by their param_shape entry
    if isinstance(module, nn.Linear):
        return (module.out_features, module.in_features) if name == "weight" else (module.out_features,)
    if isinstance(module, nn.RNNBase) and name in rnn_input_weights(module):
        return (tensor.shape[0], module.input_size)
    if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)):
        return tuple(tensor.shape) if name == "num_batches_tracked" else (module.num_features,)
    return tuple(tensor.shape)


def _unique_tensors(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The model's state with each tensor once (safetensors refuses tensors that share memory: a module used in
    several places, as CoaT's position encoding), and the names left out -> the name kept for the same tensor."""
    state: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in model.state_dict().items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.stride())
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        state[name] = tensor.detach().contiguous()
    return state, aliases


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A weights file as :func:`save_pruned` wrote it, every name of a shared tensor filled in."""
    with safe_open(path, "pt") as f:  # one read for the tensors and the metadata
        state = {name: f.get_tensor(name) for name in f.keys()}
        aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    for name, kept in aliases.items():
        state[name] = state[kept]
    return state


def load_pruned(model_dir: str | os.PathLike) -> nn.Module:
    """Rebuild a pruned model from ``arch.json`` + ``weights.safetensors`` (strict: every tensor must fit)."""
    model_dir = Path(model_dir)
    arch_path, weights_path = model_dir / ARCH_FILE, model_dir / WEIGHTS_FILE
    for p in (arch_path, weights_path):
        if not p.is_file():
            raise MissingError(f"{p} is missing: a pruned model folder holds {ARCH_FILE} and {WEIGHTS_FILE}")
    try:
        spec = json.loads(arch_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArchSpecError(f"{arch_path}: not valid JSON ({exc})") from exc
    if not isinstance(spec, dict) or spec.get("schema") != ARCH_SCHEMA:
        raise ArchSpecError(f"{arch_path}: not an edgeprune arch spec (expected schema {ARCH_SCHEMA!r})")
    model = create_model(spec["model"], **spec.get("model_kwargs", {}))
    apply_arch(model, spec["changes"])
    try:
        load_versioned(model, _read_weights(weights_path))
    except RuntimeError as exc:
        raise ArchSpecError(f"{weights_path} does not fit the architecture in {arch_path}: {exc}") from exc
    return model


def load_model_ref(
    ref: str, pretrained: Pretrained = False, weights: str | os.PathLike | None = None
) -> tuple[nn.Module, str, dict, dict]:
    """A model by registry name (``pretrained``: True or a local weights file for it), or from a saved folder
    (a pruned model, or a training run's ``model/``).

    Returns (module, registry name, model kwargs, arch changes).
    """
    path = Path(ref)
    if not path.is_dir():
        return create_model(ref, pretrained=pretrained, weights=weights), ref, {}, {}
    if weights is not None or not isinstance(pretrained, bool):
        raise ArchSpecError(f"{ref} is a saved model folder: it holds its own weights (leave out the weights file)")
    folder = path / "model" if (path / "model" / ARCH_FILE).is_file() else path
    if not (folder / ARCH_FILE).is_file():
        raise MissingError(f"{path} holds no {ARCH_FILE}: not a pruned model or a training run")
    spec = json.loads((folder / ARCH_FILE).read_text())
    return load_pruned(folder), spec["model"], spec.get("model_kwargs", {}), spec.get("changes", {})
