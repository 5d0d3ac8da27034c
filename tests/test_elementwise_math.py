"""Math functions that act position by position (powers, roots, logs, trigonometry, rounding, elementwise max)
and vector norms: channels keep apart through them and prune, except a norm over the channels."""

from __future__ import annotations

import torch
import torch.nn as nn
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
