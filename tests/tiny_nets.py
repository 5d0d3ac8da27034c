"""Small user-factory models for tests (importable as tiny_nets:NAME with tests/ on the path)."""

import torch.nn as nn


def plain_cnn() -> nn.Module:
    """No batch norm: two processes on half batches compute exactly what one process does."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip


class _Cumsum(nn.Module):
    def forward(self, x):
        return x.cumsum(dim=1)


def cumsum_cnn() -> nn.Module:
    """An op the channel graph does not know (a cumsum over channels) between two convs."""
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1), _Cumsum(), nn.Conv2d(8, 4, 1))


class _Mobile(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1), nn.ReLU()]
        for _ in range(2):
            layers += [nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Hardswish(), nn.Conv2d(16, 16, 1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def mobile_net() -> nn.Module:
    """Stem 3x3, a depthwise 3x3 + pointwise 1x1 pair with hard-swish, twice, and a classifier (eval mode): one
    layer of each kind int8 quantizers treat apart."""
    return _Mobile().eval()
