"""VGG-16 with batch norm for 32x32 inputs (the CIFAR variant used by pruning papers)."""

from __future__ import annotations

import torch
import torch.nn as nn

from edgeprune.models.registry import register_model

_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class CifarVGG(nn.Module):
    def __init__(self, cfg: tuple = _VGG16, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(True)]
                channels = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(channels, 512), nn.BatchNorm1d(512), nn.ReLU(True), nn.Linear(512, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def cifar_vgg16(pretrained: bool = False, num_classes: int = 10) -> CifarVGG:
    return CifarVGG(_VGG16, num_classes)


register_model("cifar_vgg16", cifar_vgg16, family="cifar", input_size=(3, 32, 32), test_size=32)
