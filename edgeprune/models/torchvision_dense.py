"""torchvision's segmentation and detection models, registered under their torchvision names.

A detector's anchors, box decoding and NMS depend on its feature maps' sizes, not their widths, and cannot be
traced; what edgeprune prunes is the network part: backbone, FPN and head convolutions. The registered model,
a :class:`DenseParts`, runs that part on a normalized image batch of fixed size and returns the raw outputs;
:meth:`DenseParts.as_torchvision` hands the (pruned) modules back to a torchvision model that resizes,
normalizes, decodes and suppresses as before. Its module paths are torchvision's, so torchvision weights
files load as they are.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision

from edgeprune.models.registry import register_model
from edgeprune.models.torchvision_models import get_torchvision

SEGMENTATION = torchvision.models.list_models(module=torchvision.models.segmentation)
DETECTION = torchvision.models.list_models(module=torchvision.models.detection)
# The square input each detector is built for (its transform's min_size); the SSDs' is fixed, and their extra
# layers need it in tests too.
_SSD_SIZE = {"ssd300_vgg16": 300, "ssdlite320_mobilenet_v3_large": 320}
_DETECTION_SIZE = {**_SSD_SIZE, "fasterrcnn_mobilenet_v3_large_320_fpn": 320}
# nn.Module's own bookkeeping; every other attribute of a torchvision model is its configuration
_MODULE_STATE = frozenset(vars(nn.Module()))


class DenseParts(nn.Module):
    """The traceable part of a torchvision segmentation or detection model, with torchvision's module paths.

    ``forward(x)`` takes a normalized batch (the model's ``transform`` is not applied) and returns:

    - segmentation: the ``out`` logits at the input's size (batch, classes, H, W);
    - SSD, RetinaNet, FCOS: the head's raw outputs as torchvision names them (``bbox_regression``,
      ``cls_logits``, FCOS's ``bbox_ctrness``), over every anchor of every level;
    - Faster / Mask / Keypoint R-CNN: the FPN's feature maps (``features.<level>``, which the ROI heads read:
      their width stays) and the RPN head's ``objectness.<i>`` and ``bbox_deltas.<i>`` per level.

    Being the outputs, their channels never prune.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.family = type(model)
        self.config = {k: v for k, v in vars(model).items() if k not in _MODULE_STATE}
        self.__dict__.update(self.config)  # torchvision's forwards read these (aux_classifier=None too)
        for name, child in model.named_children():
            setattr(self, name, child)

    def forward(self, x: torch.Tensor):
        if self.family.__module__.startswith("torchvision.models.segmentation"):
            return self.family.forward(self, x)["out"]
        features = self.backbone(x)
        levels = list(features.values()) if isinstance(features, dict) else [features]
        if hasattr(self, "rpn"):
            objectness, deltas = self.rpn.head(levels)
            return {**{f"features.{k}": v for k, v in features.items()},
                    **{f"objectness.{i}": v for i, v in enumerate(objectness)},
                    **{f"bbox_deltas.{i}": v for i, v in enumerate(deltas)}}  # fmt: skip
        return self.head(levels)

    def as_torchvision(self) -> nn.Module:
        """The torchvision model with these (pruned) modules: it takes a list of images as torchvision's does,
        and, for a detector, returns boxes, labels and scores after decoding and NMS."""
        model = self.family.__new__(self.family)
        nn.Module.__init__(model)
        model.__dict__.update(self.config)
        for name, child in self.named_children():
            setattr(model, name, child)
        return model.train(self.training)


def _factory(name: str):
    def build(pretrained: bool = False, **kwargs) -> nn.Module:
        if not pretrained:
            kwargs.setdefault("weights_backbone", None)  # torchvision's default would download ImageNet weights
        model = get_torchvision(name, pretrained, **kwargs)
        if name in SEGMENTATION and getattr(model, "aux_classifier", None) is not None:
            del model.aux_classifier  # a training aid the deployed model does not run (pretrained ones have it)
            model.aux_classifier = None
        return DenseParts(model)

    build.__name__ = name
    return build


for _name in SEGMENTATION:
    register_model(_name, _factory(_name), family="torchvision-segmentation", input_size=(3, 520, 520),
                   test_size=96, has_pretrained=True)  # fmt: skip
for _name in DETECTION:
    _side = _DETECTION_SIZE.get(_name, 800)
    register_model(_name, _factory(_name), family="torchvision-detection", input_size=(3, _side, _side),
                   test_size=_SSD_SIZE.get(_name, 128), has_pretrained=True)  # fmt: skip
