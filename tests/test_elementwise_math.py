"""Math functions that act position by position (powers, roots, logs, trigonometry, rounding, elementwise max)
and vector norms: channels keep apart through them and prune, except a norm over the channels."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import group_of

from edgeprune.graph import build_graph
from edgeprune.graph.groups import CONV_OUT
from edgeprune.prune import Plan, shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, oracle_error


class MathNet(nn.Module):
    """A DCT-style stem's energy (``x ** 2``, a root, a log), an RMS-style scale and a few more, between convs."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 6, 1), nn.Conv2d(6, 4, 1)

    def forward(self, x):
        y = self.a(x)
        energy = torch.log1p(torch.sqrt(y**2 + 1.0)) + y.pow(2).rsqrt().clamp_max(10.0)
        wave = torch.sin(y) * y.cos() + torch.maximum(y, y.square()).round() / 8 + torch.pow(2.0, y.tanh())
        return self.b(torch.addcmul(energy, wave.sign(), wave.abs().sqrt(), value=0.5).addcdiv(y, y.exp() + 1))


def test_elementwise_math_keeps_channels_apart_and_prunes():
    torch.manual_seed(0)
    model = liven(MathNet().eval(), 4)
    graph = build_graph(model, torch.randn(1, 3, 4, 4), model_name="test_elementwise_math:math")
    group, _ = group_of(graph, "a", CONV_OUT)
    assert group.prunable and group.size == 6 and group is group_of(graph, "b", "conv_in")[0]
    plan = Plan(graph.model_name, graph.fingerprint, {group.id: [0, 2, 5]})
    pruned, _ = shrink(model, graph, plan)
    assert pruned.a.out_channels == 3 and pruned.b.in_channels == 3
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 4, 4)) <= ORACLE_TOLERANCE


class NormsNet(nn.Module):
    """A response normalization (ConvNeXt-V2's GRN: each channel's L2 norm over space) on one branch, a norm over
    the channels (an L2-normalized embedding) on another."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 6, 1), nn.Conv2d(6, 4, 1), nn.Conv2d(3, 5, 1)

    def forward(self, x):
        y = self.a(x)
        y = y * torch.norm(y, p=2, dim=(2, 3), keepdim=True) + torch.linalg.vector_norm(y, dim=-1, keepdim=True)
        z = self.c(x)
        return self.b(y) + (z / z.norm(2, 1, True)).mean(1, keepdim=True)


def test_a_norm_over_space_keeps_channels_and_one_over_channels_mixes_them():
    torch.manual_seed(0)
    model = liven(NormsNet().eval(), 4)
    graph = build_graph(model, torch.randn(1, 3, 4, 4), model_name="test_elementwise_math:norms")
    spatial, _ = group_of(graph, "a", CONV_OUT)
    assert spatial.prunable and spatial is group_of(graph, "b", "conv_in")[0]
    across, _ = group_of(graph, "c", CONV_OUT)
    assert not across.prunable and "norm" in across.frozen
    plan = Plan(graph.model_name, graph.fingerprint, {spatial.id: [1, 2, 4]})
    pruned, _ = shrink(model, graph, plan)
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 4, 4)) <= ORACLE_TOLERANCE


class Between(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.b(self.fn(self.a(x)))


# Ops no table names that torch tags pointwise, and reductions, sorts, scans and index ops along the spatial dims.
KEEP_CHANNELS = {
    "lerp": lambda y: torch.lerp(y, y.sigmoid(), 0.5), "hypot": lambda y: torch.hypot(y, y),
    "expm1": lambda y: torch.expm1(y.tanh()), "trunc": torch.trunc, "remainder": lambda y: y % 2.0,
    "floor_divide": lambda y: y // 2.0, "masked_fill": lambda y: y.masked_fill(y < 0, 0.0),
    "where": lambda y: torch.where(y > 0, y, 0.1 * y), "clip": lambda y: torch.clip(y, -1, 1),
    "nan_to_num": torch.nan_to_num, "logit": lambda y: torch.logit(y.sigmoid(), eps=1e-3),
    "type": lambda y: y.type(torch.float32), "square_": lambda y: y.clone().square_(),
    "var": lambda y: y * y.var((2, 3), keepdim=True), "std": lambda y: y / (torch.std(y, dim=(2, 3), keepdim=True) + 1),
    "logsumexp": lambda y: y - torch.logsumexp(y, dim=(2, 3), keepdim=True), "amin": lambda y: y - y.amin((2, 3), True),
    "prod": lambda y: y * y.prod(3, keepdim=True), "sort": lambda y: y.sort(3)[0],
    "topk": lambda y: F.pad(y.topk(4, 3).values, (0, 4)), "rot90": lambda y: torch.rot90(y, 1, (2, 3)),
    "index_select": lambda y: y.index_select(3, torch.arange(7, -1, -1)),
    "gather": lambda y: y.gather(3, torch.zeros_like(y, dtype=torch.long)),
    "lp_pool2d": lambda y: F.interpolate(F.lp_pool2d(y, 2, 2), scale_factor=2),
    "cumsum": lambda y: torch.cumsum(y, 3) / 8, "cumprod": lambda y: y.tanh().cumprod(2),
    "logcumsumexp": lambda y: y.logcumsumexp(-1), "cummax": lambda y: torch.cummax(y, 2).values,
    "cummin": lambda y: y.cummin(3)[0] * y, "diff": lambda y: F.pad(torch.diff(y, dim=3), (0, 1)),
    "diff twice": lambda y: F.pad(y.diff(2, 2), (0, 0, 1, 1)),
}  # fmt: skip
MIX_CHANNELS = {
    "std over channels": lambda y: y / y.std(1, keepdim=True), "argmax over channels": lambda y: y * y.argmax(1, True),
    "sort over channels": lambda y: y.sort(1)[0],
    "index_select of channels": lambda y: y.index_select(1, torch.arange(8)),
    "cumsum over channels": lambda y: y.cumsum(1), "cummax over channels": lambda y: torch.cummax(y, 1).values,
    "diff with a prepended tensor": lambda y: torch.diff(y, dim=3, prepend=y[..., :1]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(KEEP_CHANNELS))
def test_an_op_along_other_dims_keeps_channels_and_prunes(name):
    torch.manual_seed(0)
    model = liven(Between(KEEP_CHANNELS[name]).eval(), 8)
    graph = build_graph(model, torch.randn(1, 3, 8, 8), model_name="test_elementwise_math:keep")
    group, _ = group_of(graph, "a", CONV_OUT)
    assert group.prunable and group is group_of(graph, "b", "conv_in")[0]
    plan = Plan(graph.model_name, graph.fingerprint, {group.id: [0, 3, 4, 6]})
    pruned, _ = shrink(model, graph, plan)
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 8, 8)) <= ORACLE_TOLERANCE


@pytest.mark.parametrize("name", sorted(MIX_CHANNELS))
def test_an_op_along_the_channels_freezes_them(name):
    graph = build_graph(Between(MIX_CHANNELS[name]).eval(), torch.randn(1, 3, 8, 8), model_name="t:mix")
    assert not group_of(graph, "a", CONV_OUT)[0].prunable
