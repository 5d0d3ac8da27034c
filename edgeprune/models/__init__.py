"""Model registry. Importing this package registers every family."""

from edgeprune.models import (  # noqa: F401  (registration)
    cifar_resnet,
    cifar_vgg,
    timm_models,
    torchvision_dense,
    torchvision_models,
    ultralytics_models,
)
from edgeprune.models.layers import ChannelRemap
from edgeprune.models.registry import (
    ModelEntry,
    UnknownModelError,
    create_model,
    create_model_for_size,
    families,
    get_entry,
    list_models,
    register_model,
)

__all__ = [
    "ChannelRemap",
    "ModelEntry",
    "UnknownModelError",
    "create_model",
    "create_model_for_size",
    "families",
    "get_entry",
    "list_models",
    "register_model",
]
