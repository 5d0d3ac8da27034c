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
