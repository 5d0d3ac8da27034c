"""Layers that edgeprune's graph understands beyond plain torch.nn."""

from __future__ import annotations

import torch
import torch.nn as nn


class ChannelRemap(nn.Module):
    """Route input channels to output positions, zero-filling the rest (optionally subsampling space).

    ``index[j]`` is the input channel that feeds output channel ``j``, or -1 for a zero channel. The
    CIFAR ResNet "option A" shortcut is ``ChannelRemap`` with stride 2 and an index that places the
    narrow stream on the middle slice of the wider one. Unlike a hard-coded ``F.pad``, pruning can
    rewrite the index, so both streams stay prunable independently.
    """

    def __init__(self, index: list[int] | torch.Tensor, in_channels: int, stride: int = 1) -> None:
        super().__init__()
        index = torch.as_tensor(index, dtype=torch.long)
        if index.ndim != 1 or bool((index < -1).any()) or bool((index >= in_channels).any()):
            raise ValueError(f"ChannelRemap index must be 1-D with values in [-1, {in_channels})")
        self.in_channels = in_channels
        self.stride = stride
        # Not persistent: it is architecture, not a weight (saved in the arch spec, keeps checkpoints loadable).
        self.register_buffer("index", index, persistent=False)

    @classmethod
    def zero_pad(cls, in_channels: int, out_channels: int, stride: int) -> ChannelRemap:
        """The option-A shortcut: input channels land on the middle of ``out_channels``."""
        before = (out_channels - in_channels) // 2
        index = [-1] * before + list(range(in_channels)) + [-1] * (out_channels - in_channels - before)
        return cls(index, in_channels, stride)

    @property
    def out_channels(self) -> int:
        return int(self.index.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        zero = torch.zeros_like(x[:, :1])
        # Column `in_channels` of the extended tensor is the zero channel that -1 selects.
        gather = torch.where(self.index < 0, self.in_channels, self.index)
        return torch.cat([x, zero], dim=1).index_select(1, gather)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, stride={self.stride}"
