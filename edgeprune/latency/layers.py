"""The layers whose cost a latency profile tabulates, keyed by geometry (HALP-style signatures)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from edgeprune.graph.groups import rnn_input_weights


@dataclass(frozen=True, order=True)
class Geometry:
    """Everything about a layer's cost except its channel counts."""

    op: str  # "conv" | "dwconv" (groups = channels) | "gconv" (fixed group width) | "linear"
    batch: int
    h: int
    w: int
    kernel: int
    stride: int
    group_width: int  # input channels per conv group (1 for dwconv, cin for plain conv -> 0)
    dtype: str = "fp32"
    # A grouped conv's output channels per input channel (FastViT's downsampling: a 3x3 conv with two filters
    # per channel, 48 -> 96): its table runs along cin with cout = multiplier x cin. In the key only when not 1.
    multiplier: int = 1
    # A conv's spatial dims: 2 for images, 1 for a sequence (Conv1d: h = 1, w its length, keyed by the length
    # alone).
    dims: int = 2

    @property
    def key(self) -> str:
        gw = f"gw{self.group_width}" + (f"m{self.multiplier}" if self.multiplier != 1 else "")
        size = f"{self.w}" if self.dims == 1 else f"{self.h}x{self.w}"
        parts = (self.op, f"b{self.batch}", size, f"k{self.kernel}", f"s{self.stride}", gw, self.dtype)
        return "|".join(parts)

    @classmethod
    def from_key(cls, key: str) -> Geometry:
        op, b, size, k, s, gw, dtype = key.split("|")
        h, _, w = size.rpartition("x")
        width, _, multiplier = gw[2:].partition("m")
        return cls(op, int(b[1:]), int(h or 1), int(w), int(k[1:]), int(s[1:]), int(width), dtype,
                   int(multiplier or 1), 2 if h else 1)  # fmt: skip

    @property
    def taps(self) -> int:
        """Weights per (input, output) channel pair: the kernel's area (its length for a sequence)."""
        return 1 if self.op == "linear" else self.kernel**self.dims

    def spatial(self) -> tuple[int, ...]:
        """The input's spatial dims: (h, w), or a sequence's (length,)."""
        return (self.w,) if self.dims == 1 else (self.h, self.w)

    def input_shape(self, cin: int) -> tuple[int, ...]:
        """The shape of the layer's input at ``cin`` channels."""
        return (self.batch, cin) if self.op == "linear" else (self.batch, cin, *self.spatial())

    def paired_cout(self, cin: int) -> int:
        """The output channels a one-axis table (depthwise, grouped) times at ``cin`` input channels."""
        return cin * self.multiplier


@dataclass(frozen=True)
class Layer:
    """One conv/linear call of a model: its geometry and its channel counts."""

    path: str
    geometry: Geometry
    cin: int
    cout: int
    # Output positions (pixels, sequence steps) where the model's own run gave them: a conv padded wider than
    # "same" (a causal TCN, a dilated WaveNet) computes more of them than its stride alone says. 0: from the
    # geometry.
    positions: int = 0

    @property
    def row(self) -> list:
        """[geometry key, cin, cout]: the layer as a profile stores it (calibration points, width fits)."""
        return [self.geometry.key, self.cin, self.cout]


def conv_geometry(m: nn.Conv1d | nn.Conv2d, batch: int, h: int, w: int, dtype: str) -> Geometry:
    """A Conv2d's geometry at an (h, w) input, or a Conv1d's at length ``w`` (``h`` = 1)."""
    k, s, dims = m.kernel_size[0], m.stride[0], len(m.kernel_size)
    if m.groups == 1:
        return Geometry("conv", batch, h, w, k, s, 0, dtype, dims=dims)
    if m.groups == m.in_channels == m.out_channels:
        return Geometry("dwconv", batch, h, w, k, s, 1, dtype, dims=dims)
    whole = m.out_channels % m.in_channels == 0  # another ratio keeps 1, and profiling it is refused (tables.py)
    multiplier = m.out_channels // m.in_channels if whole else 1
    return Geometry("gconv", batch, h, w, k, s, m.in_channels // m.groups, dtype, multiplier, dims)


def collect_layers(model: nn.Module, input_shape: tuple[int, ...], dtype: str = "fp32") -> list[Layer]:
    """Run ``model`` once on zeros and record every Conv1d/Conv2d/Linear call with its input geometry, and the matrix
    products of every recurrent layer (:func:`recurrent_layers`)."""
    layers: list[Layer] = []
    handles = []

    def hook(path):
        def fn(module, args, output):
            x = args[0]
            if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                h, w = (1, x.shape[2]) if x.dim() == 3 else (x.shape[2], x.shape[3])
                g = conv_geometry(module, x.shape[0], h, w, dtype)
                positions = math.prod(output.shape[2:])
                layers.append(Layer(path, g, module.in_channels, module.out_channels, positions))
            elif isinstance(module, nn.RNNBase):
                layers.extend(recurrent_layers(path, module, x, dtype))
            else:
                rows = int(x.numel() // x.shape[-1])
                g = Geometry("linear", rows, 1, 1, 1, 1, 0, dtype)
                layers.append(Layer(path, g, module.in_features, module.out_features))

        return fn

    for path, m in model.named_modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear, nn.RNNBase)):
            handles.append(m.register_forward_hook(hook(path)))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(input_shape))
    finally:
        for h in handles:
            h.remove()
    return layers


def recurrent_layers(path: str, module: nn.RNNBase, x: torch.Tensor, dtype: str = "fp32") -> list[Layer]:
    """An LSTM, GRU or RNN call as linears over every step of its input ``x``: each weight matrix multiplies
    every step's input or hidden state (as fvcore counts it). The first layer's input weights read the pruned
    features and carry the module's path; the others (the recurrences, the deeper layers) keep their widths
    and are named ``path:weight_hh_l0``. Priced as one linear over all the steps, a recurrence, which runs step
    by step, is an estimate."""
    geometry = Geometry("linear", int(x.numel() // x.shape[-1]), 1, 1, 1, 1, 0, dtype)
    reads_input = set(rnn_input_weights(module))
    return [Layer(path if name in reads_input else f"{path}:{name}", geometry, w.shape[1], w.shape[0])
            for name, w in module.named_parameters(recurse=False) if name.startswith("weight")]  # fmt: skip


def inputs_per_group(layer: Layer, cin: int) -> int:
    """Input channels each output channel of ``layer`` reads at ``cin`` inputs."""
    op = layer.geometry.op
    return 1 if op == "dwconv" else layer.geometry.group_width if op == "gconv" else cin


def layer_mmacs(layer: Layer, cin: int, cout: int) -> float:
    """Millions of multiply-accumulates of a conv or linear at (cin, cout), as fvcore counts them."""
    g = layer.geometry
    if g.op == "linear":
        return g.batch * cin * cout / 1e6
    positions = layer.positions or math.prod(-(-d // g.stride) for d in g.spatial())
    return g.batch * positions * g.taps * inputs_per_group(layer, cin) * cout / 1e6


def on_blocking(channels: int, align: int) -> bool:
    """Whether a channel count sits on a runtime's channel blocking: a multiple of it, or a divisor (4 of 8).
    The planner's widths, the profile's misalignment term and the in-network fit's widths all use this."""
    return channels % align == 0 or align % channels == 0
