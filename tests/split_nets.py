"""Small models that split their channels (importable as split_nets:NAME with tests/ on the path)."""

from __future__ import annotations

import torch
import torch.nn as nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class _Head(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(c, 5)

    def forward(self, x):
        return self.fc(self.pool(x).flatten(1))


class EqualSplit(nn.Module):
    """split by a width attribute into equal parts, a conv per part, concat."""

    def __init__(self, width: int = 6, scale: int = 4, method: bool = False) -> None:
        super().__init__()
        self.width, self.method = width, method
        self.stem = _block(3, width * scale)
        self.convs = nn.ModuleList(_block(width, width) for _ in range(scale))
        self.mix = _block(width * scale, 12)
        self.head = _Head(12)

    def forward(self, x):
        x = self.stem(x)
        parts = x.split(self.width, dim=1) if self.method else torch.split(x, self.width, 1)
        return self.head(self.mix(torch.cat([c(parts[i]) for i, c in enumerate(self.convs)], 1)))


class Res2NetLike(nn.Module):
    """Res2Net's cascade: part i is added to the previous part's conv output before its own conv."""

    def __init__(self, width: int = 5, scale: int = 4) -> None:
        super().__init__()
        self.width = width
        self.stem = _block(3, 16)
        self.conv1 = _block(16, width * scale)
        self.convs = nn.ModuleList(_block(width, width) for _ in range(scale - 1))
        self.conv3 = nn.Sequential(nn.Conv2d(width * scale, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.head = _Head(16)

    def forward(self, x):
        x = self.stem(x)
        spx = torch.split(self.conv1(x), self.width, 1)
        out, sp = [], spx[0]
        for i, conv in enumerate(self.convs):
            sp = conv(sp if i == 0 else sp + spx[i])
            out.append(sp)
        out.append(spx[-1])
        return self.head(torch.relu(self.conv3(torch.cat(out, 1)) + x))


class ChunkNet(nn.Module):
    """chunk into a fixed number of parts, and split by a size computed from the input's shape."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _block(3, 16)
        self.convs = nn.ModuleList(_block(4, 4) for _ in range(4))
        self.left, self.right = _block(8, 8), _block(8, 8)
        self.head = _Head(16)

    def forward(self, x):
        x = self.stem(x)
        parts = x.chunk(4, dim=1)
        x = torch.cat([c(parts[i]) for i, c in enumerate(self.convs)], 1)
        a, b = torch.split(x, x.shape[1] // 2, dim=1)
        return self.head(torch.cat([self.left(a), self.right(b)], 1))


class ListedSplit(nn.Module):
    """split into listed sizes, from a list attribute (timm's MixedConv2d) or from int attributes (FasterNet)."""

    def __init__(self, listed: bool = True) -> None:
        super().__init__()
        self.listed = listed
        self.splits = (4, 8, 6)
        self.dim_a, self.dim_b = 8, 10
        self.stem = _block(3, 18)
        self.convs = nn.ModuleList(_block(c, c) for c in self.splits)
        self.a, self.b = _block(8, 8), _block(10, 10)
        self.head = _Head(18)

    def forward(self, x):
        x = self.stem(x)
        parts = torch.split(x, self.splits, 1)
        x = torch.cat([c(parts[i]) for i, c in enumerate(self.convs)], 1)
        a, b = torch.split(x, [self.dim_a, self.dim_b], dim=1)
        return self.head(torch.cat([self.a(a), self.b(b)], 1))


class CspLike(nn.Module):
    """CSPNet: the expanded channels are split in halves by ``self.expand_chs // 2``."""

    def __init__(self) -> None:
        super().__init__()
        self.expand_chs = 12
        self.expand = _block(3, 12)
        self.blocks = nn.Sequential(_block(6, 6), _block(6, 6))
        self.head = _Head(12)

    def forward(self, x):
        xs, xb = self.expand(x).split(self.expand_chs // 2, dim=1)
        return self.head(torch.cat([xs, self.blocks(xb)], 1))


class ConstantSplit(nn.Module):
    """Split sizes that no attribute holds (a literal; an attribute that also scales a value): frozen."""

    def __init__(self) -> None:
        super().__init__()
        self.width = 4
        self.stem, self.stem2 = _block(3, 8), _block(8, 8)
        self.convs = nn.ModuleList(_block(4, 4) for _ in range(4))
        self.head = _Head(16)

    def forward(self, x):
        x = self.stem(x)
        a, b = torch.split(x, 4, 1)
        c, d = torch.split(self.stem2(x), self.width, 1)
        parts = [conv(p) for conv, p in zip(self.convs, (a, b, c, d * self.width))]
        return self.head(torch.cat(parts, 1))


class UnbindNet(nn.Module):
    """unbind over the channel axis: every channel is one tensor the code unpacks."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.tail = _block(3, 3), _block(3, 8)
        self.head = _Head(8)

    def forward(self, x):
        r, g, b = self.stem(x).unbind(1)
        return self.head(self.tail(torch.stack([b, g, r], 1)))


def equal_split() -> nn.Module:
    return EqualSplit()


def equal_split_method() -> nn.Module:
    return EqualSplit(method=True)


def res2net_like() -> nn.Module:
    return Res2NetLike()


def chunk_net() -> nn.Module:
    return ChunkNet()


def listed_split() -> nn.Module:
    return ListedSplit()


def csp_like() -> nn.Module:
    return CspLike()


def constant_split() -> nn.Module:
    return ConstantSplit()


def unbind_net() -> nn.Module:
    return UnbindNet()
