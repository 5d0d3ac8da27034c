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

    def as_conv(self) -> nn.Conv2d:
        """The same map as a 1x1 convolution of 0/1 weights at ``stride``, for runtimes with no gather (XNNPACK):
        exact, for in x out multiply-adds per output pixel."""
        weight = torch.zeros(self.out_channels, self.in_channels, 1, 1, device=self.index.device)
        rows = (self.index >= 0).nonzero().flatten()
        weight[rows, self.index[rows], 0, 0] = 1.0
        conv = nn.Conv2d(self.in_channels, self.out_channels, 1, self.stride, bias=False, device=self.index.device)
        conv.weight.data.copy_(weight)
        return conv.requires_grad_(False)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, stride={self.stride}"


def conv_output_size(size: tuple[int, ...], kernel, stride, padding, dilation) -> tuple[int, ...]:
    """Spatial output size of a conv with these settings (ints or per-dim tuples; padding may be 'same')."""
    def per_dim(v) -> tuple[int, ...]:
        return tuple(v) if isinstance(v, (tuple, list)) else (v,) * len(size)

    if padding == "same":
        return tuple(size)
    pad = (0,) * len(size) if padding == "valid" else per_dim(padding)
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                 for n, k, s, p, d in zip(size, per_dim(kernel), per_dim(stride), pad, per_dim(dilation)))  # fmt: skip


class _ConvShaped(nn.Module):
    """Keeps a removed conv's geometry, so the (empty or constant) output has the conv's spatial size."""

    def __init__(self, kernel, stride, padding, dilation) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation

    def out_size(self, x: torch.Tensor) -> tuple[int, ...]:
        return conv_output_size(tuple(x.shape[2:]), self.kernel, self.stride, self.padding, self.dilation)

    @classmethod
    def geometry_of(cls, conv: nn.Module) -> dict:
        return {k: conv.padding if k == "padding" and isinstance(conv.padding, str) else list(getattr(conv, a))
                for k, a in (("kernel", "kernel_size"), ("stride", "stride"), ("padding", "padding"),
                             ("dilation", "dilation"))}  # fmt: skip


class EmptyChannels(_ConvShaped):
    """A conv of a removed residual branch: no output channels (its only reader is a ``BranchConstant``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((x.shape[0], 0, *self.out_size(x)))


class BranchConstant(_ConvShaped):
    """What a removed residual branch adds: one learnable value per channel, over the conv's output shape.

    The value is the branch's last conv (its bias) and norm applied to no input. The output is a full
    tensor, not a broadcast view, because models add the shortcut to it in place (``out += identity``).
    """

    def __init__(self, channels: int, kernel, stride, padding, dilation) -> None:
        super().__init__(kernel, stride, padding, dilation)
        self.value = nn.Parameter(torch.zeros(channels))

    @property
    def channels(self) -> int:
        return int(self.value.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.out_size(x)
        shape = (x.shape[0], self.channels, *size)
        return self.value.view(1, -1, *([1] * len(size))).expand(shape).contiguous()

    def extra_repr(self) -> str:
        return f"channels={self.channels}, stride={self.stride}"
