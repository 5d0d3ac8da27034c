"""Every torchvision classification model, registered under its torchvision name."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torchvision

from edgeprune.errors import DataNotFoundError
from edgeprune.models.registry import register_model

# Models whose architecture fixes the input size, and the smallest size the others accept.
_FIXED_SIZE = {"maxvit_t": 224}
_TEST_SIZE = {"inception_v3": 96, "maxvit_t": 224, "vit_h_14": 56}  # vit_h_14: patch 14
_INPUT_SIZE = {"inception_v3": 299}
# Auxiliary heads only run in training mode; a pruned deployment model has no use for them, and a
# head the eval-mode trace never reaches could not be shrunk consistently.
_DEFAULTS = {"googlenet": {"aux_logits": False, "init_weights": True}, "inception_v3": {"aux_logits": False}}


def get_torchvision(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """torchvision's ``name`` with its default weights (from torchvision's cache) or none; a clear error when
    the weights cannot be had."""
    try:
        return torchvision.models.get_model(name, weights="DEFAULT" if pretrained else None, **kwargs)
    except OSError as exc:  # no network (URLError), or a partial file in the cache
        if not pretrained:
            raise
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        raise DataNotFoundError(
            f"cannot get the pretrained {name} weights: torchvision loads them from its cache ({folder}) and "
            f"downloading them failed ({exc}); put the weights file there, or leave out --pretrained"
        ) from exc


def _factory(name: str):
    def build(pretrained: bool = False, **kwargs) -> nn.Module:
        return get_torchvision(name, pretrained, **kwargs)

    build.__name__ = name
    return build


for _name in torchvision.models.list_models(module=torchvision.models):
    register_model(
        _name,
        _factory(_name),
        family="torchvision",
        input_size=(3, _INPUT_SIZE.get(_name, 224), _INPUT_SIZE.get(_name, 224)),
        test_size=_FIXED_SIZE.get(_name, _TEST_SIZE.get(_name, 64)),
        has_pretrained=True,
        defaults=_DEFAULTS.get(_name, {}),
        # ViTs take any size the patch divides, but their positional embedding is sized at build time.
        size_kwarg="image_size" if _name.startswith("vit_") else None,
    )
