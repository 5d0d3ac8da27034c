"""Model registry: build any supported network by name.

Families register a factory with :func:`register_model`, or a name prefix with :func:`register_prefix`
(``timm:<name>`` builds any timm model); :func:`create_model` builds by name, and a
``"pkg.module:factory"`` string builds a user's own model (a registered prefix is recognized first).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn as nn

from edgeprune.errors import InputError, UnknownNameError
from edgeprune.models.weights import load_state, read_state_dict


class UnknownModelError(UnknownNameError):
    """Raised for a model name that is neither registered nor a ``pkg.module:factory`` path."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one buildable model."""

    name: str
    factory: Callable[..., nn.Module]
    family: str
    input_size: tuple[int, ...]  # (C, H, W) the model is designed for; (C, L) for a sequence model
    test_size: int  # smallest square side (or sequence length) that tests and the zoo use
    has_pretrained: bool = False
    defaults: dict = field(default_factory=dict)
    size_kwarg: str | None = None  # factory argument that sets the input size (ViT's image_size)
    # How the model's own pretraining fed it images, where the family says (timm's pretrained config):
    # mean, std, crop_pct, interpolation.
    data_config: dict = field(default_factory=dict)
    # What turns the built model into the form it is deployed in (timm's RepVGG-style branches fused into one
    # conv), applied after its weights load; ``create_model(..., reparameterize=False)`` keeps the training form.
    deploy_form: Callable[[nn.Module], nn.Module] | None = None


_REGISTRY: dict[str, ModelEntry] = {}
# prefix -> (family, entry for a full name, the names `edgeprune models` lists)
_PREFIXES: dict[str, tuple[str, Callable[[str], ModelEntry], tuple[str, ...]]] = {}


def register_model(
    name: str,
    factory: Callable[..., nn.Module],
    *,
    family: str,
    input_size: tuple[int, int, int] = (3, 224, 224),
    test_size: int = 64,
    has_pretrained: bool = False,
    defaults: dict | None = None,
    size_kwarg: str | None = None,
) -> None:
    """Add a model factory under ``name`` (later registrations of the same name are an error)."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = ModelEntry(
        name, factory, family, input_size, test_size, has_pretrained, defaults or {}, size_kwarg
    )


def register_prefix(prefix: str, family: str, resolve: Callable[[str], ModelEntry], listed: list[str]) -> None:
    """Build every name that starts with ``prefix`` through ``resolve(name)`` (names it cannot build raise
    :class:`UnknownModelError`); ``listed`` are the names checked and shown by ``edgeprune models``."""
    if prefix in _PREFIXES:
        raise ValueError(f"model prefix {prefix!r} is already registered")
    _PREFIXES[prefix] = (family, resolve, tuple(listed))


def families() -> list[str]:
    """Every family a model can belong to (for ``edgeprune models --family``)."""
    return sorted({e.family for e in _REGISTRY.values()} | {f for f, _, _ in _PREFIXES.values()})


def list_models(family: str | None = None) -> list[str]:
    """Names of the registered models (and the checked names of prefix families), optionally of one family."""
    names = [n for n, e in _REGISTRY.items() if family is None or e.family == family]
    names += [n for f, _, listed in _PREFIXES.values() if family in (None, f) for n in listed]
    return sorted(names)


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; user factories get a generic entry."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    for prefix, (_, resolve, _) in _PREFIXES.items():
        if name.startswith(prefix):
            return resolve(name)
    if ":" in name:
        factory = _load_user_factory(name)
        size = _declared_input_size(name, factory)
        return ModelEntry(name, factory, "user", size, min(64, *size[1:]))
    close = [n for n in _REGISTRY if name.lower() in n.lower()][:5]
    hint = f" Did you mean: {', '.join(close)}?" if close else " See `edgeprune models`."
    raise UnknownModelError(f"unknown model {name!r}.{hint} A user model is given as 'pkg.module:factory'.")


# True: the family's own pretrained weights; a path: a local weights file (safetensors or a torch checkpoint)
Pretrained = bool | str | os.PathLike


def create_model(
    name: str, pretrained: Pretrained = False, weights: str | os.PathLike | None = None, **kwargs
) -> nn.Module:
    """Build a model by registry name, ``timm:<name>`` or ``pkg.module:factory``.

    Args:
        name: registered name (see :func:`list_models`), a prefixed name or ``"pkg.module:factory"``.
        pretrained: True loads the family's pretrained weights (an error where none exist); a path is the
            same as ``weights`` (so every stage that forwards ``pretrained`` also takes a weights file).
        weights: a local weights file to load instead (safetensors, or a torch checkpoint holding a state
            dict): every tensor must fit the model (see :func:`edgeprune.models.weights.load_weights`).
        **kwargs: forwarded to the factory (e.g. ``num_classes``). For a family with a deploy form (timm
            models with re-parameterizable blocks), ``reparameterize=False`` keeps the training form; by default
            the model is built as it is deployed, after its weights load.
    """
    if not isinstance(pretrained, bool):
        if weights is not None:
            raise InputError("give the weights file once (pretrained=PATH or weights=PATH)")
        pretrained, weights = False, pretrained
    entry = get_entry(name)
    if pretrained and weights is not None:
        raise InputError("give pretrained weights or a weights file, not both")
    if pretrained and not entry.has_pretrained:
        raise InputError(f"model {name!r} has no pretrained weights in edgeprune")
    args = {**entry.defaults, **kwargs}
    deploy = entry.deploy_form if entry.deploy_form is not None and args.pop("reparameterize", True) else None
    model = entry.factory(**args) if entry.family == "user" else entry.factory(pretrained=pretrained, **args)
    if weights is not None:
        state = read_state_dict(weights)
        try:
            load_state(model, state, str(weights))
        except InputError as training_form:
            if deploy is None:
                raise
            # a file saved from the deploy form (a training run, a pruned model's source) fits only that form
            model = deploy(model)
            try:
                load_state(model, state, str(weights))
            except InputError:
                raise training_form from None  # fits neither: the training form's mismatch is the one users know
            return model
    return deploy(model) if deploy else model


def create_model_for_size(name: str, size: int, pretrained: Pretrained = False, **kwargs) -> nn.Module:
    """Like :func:`create_model`, telling size-bound models (ViT) the square input side ``size``."""
    entry = get_entry(name)
    if entry.size_kwarg and entry.size_kwarg not in kwargs:
        kwargs[entry.size_kwarg] = size
    return create_model(name, pretrained=pretrained, **kwargs)


USER_INPUT_SIZE = (3, 224, 224)


def resized(size: tuple[int, ...], side: int | None) -> tuple[int, ...]:
    """An input shape, (C, H, W) or a sequence's (C, L), with every spatial dim set to ``side`` (None: as is)."""
    return tuple(size) if not side else (size[0], *([side] * (len(size) - 1)))


def square_side(size: tuple[int, ...]) -> int | None:
    """The side that :func:`resized` rebuilds ``size`` from: a square image's side, a sequence's length; None
    for an image that is not square (H != W), which keeps its model's own (H, W) (sides given on the command
    line are square, so a non-square size is the model's own)."""
    spatial = tuple(size)[1:]
    return spatial[0] if len(set(spatial)) == 1 else None


def _declared_input_size(name: str, factory: Callable) -> tuple[int, ...]:
    """A user factory's ``input_size`` attribute: (C, H, W) for an image model (``small_cnn.input_size = (1, 96,
    96)`` for a grayscale one), (C, L) for a sequence model (40 MFCC features by 101 frames: ``(40, 101)``);
    else 3 x 224 x 224."""
    size = getattr(factory, "input_size", None)
    if size is None:
        return USER_INPUT_SIZE
    if not (isinstance(size, (tuple, list)) and len(size) in (2, 3)
            and all(isinstance(v, int) and v > 0 for v in size)):  # fmt: skip
        raise InputError(f"{name}: its input_size attribute is {size!r}; expected (channels, height, width) for "
                         "images, e.g. (1, 96, 96), or (channels, length) for sequences, e.g. (40, 101): "
                         "positive integers")  # fmt: skip
    return tuple(size)


def _load_user_factory(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownModelError(f"cannot import {module_name!r} for user model {spec!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UnknownModelError(f"{module_name!r} has no callable {attr!r} (user model {spec!r})")
    return factory
