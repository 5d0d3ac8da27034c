"""A keyword-spotting-style 1-D CNN (TC-ResNet-like) for the sequence benchmark: it reads a CIFAR-10 image as
a sequence of its 32 rows, each row 96 features (32 columns x 3 colours)."""

import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(cin, cout, 9, stride, 4, bias=False), nn.BatchNorm1d(cout), nn.ReLU(),
                                  nn.Conv1d(cout, cout, 9, 1, 4, bias=False), nn.BatchNorm1d(cout))  # fmt: skip
        self.skip = nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class TCResNet(nn.Module):
    def __init__(self, features: int = 96, widths: tuple[int, ...] = (64, 96, 128, 192), num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(features, widths[0], 3, 1, 1, bias=False), nn.BatchNorm1d(widths[0]),
                                  nn.ReLU())  # fmt: skip
        self.blocks = nn.Sequential(*[Block(a, b, 2 if i else 1) for i, (a, b) in enumerate(zip(widths, widths[1:]))])
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(-1))


def tc_resnet(num_classes: int = 10) -> nn.Module:
    return TCResNet(num_classes=num_classes)


tc_resnet.input_size = (96, 32)
