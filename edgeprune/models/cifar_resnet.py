"""CIFAR ResNets (He et al. 2016, sec. 4.2) with "option A" shortcuts.

Layout and parameter names match the widely used pretrained CIFAR-10 checkpoints (stages of 16/32/64
channels, shortcut = stride-2 subsampling + zero channel padding), so they load strictly.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from edgeprune.errors import InputError
from edgeprune.models.layers import ChannelRemap
from edgeprune.models.pretrained import load_cifar_resnet_checkpoint
from edgeprune.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        needs_shortcut = stride != 1 or in_planes != planes
        self.shortcut = ChannelRemap.zero_pad(in_planes, planes, stride) if needs_shortcut else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise InputError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        planes, layers = 16, []
        for i, width in enumerate((16, 32, 64)):
            blocks = []
            for b in range(n):
                stride = 2 if (i > 0 and b == 0) else 1
                blocks.append(BasicBlock(planes, width, stride))
                planes = width
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(torch.flatten(self.pool(x), 1))


def _factory(depth: int):
    def build(pretrained: bool = False, num_classes: int = 10) -> CifarResNet:
        model = CifarResNet(depth, num_classes)
        if pretrained:
            if num_classes != 10:
                raise InputError("pretrained CIFAR ResNets have 10 classes")
            load_cifar_resnet_checkpoint(model, depth)
        return model

    build.__name__ = f"cifar_resnet{depth}"
    return build


for _depth in (20, 32, 44, 56, 110):
    register_model(
        f"cifar_resnet{_depth}",
        _factory(_depth),
        family="cifar",
        input_size=(3, 32, 32),
        test_size=32,
        has_pretrained=_depth != 110,
    )
