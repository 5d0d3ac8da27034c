"""Which groups are residual streams: summed writers are, a squeeze-excitation gate and a concat are not."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torchvision.ops import SqueezeExcitation

from edgeprune.graph import build_graph
from edgeprune.latency import collect_layers
from edgeprune.models import create_model, get_entry
from edgeprune.plan.budget import Budget
from edgeprune.plan.planner import plan_pruning


class GatedResidual(nn.Module):
    """stem -> [expand -> depthwise -> SE gate -> project] + stem, then a concat of two heads."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.expand = nn.Conv2d(8, 16, 1)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.se = SqueezeExcitation(16, 4)
        self.project = nn.Conv2d(16, 8, 1)
        self.left, self.right = nn.Conv2d(8, 6, 1), nn.Conv2d(8, 10, 1)
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        s = self.stem(x)
        s = s + self.project(self.se(self.dw(self.expand(s).relu())))
        return self.head(torch.cat([self.left(s), self.right(s)], dim=1))


def group_of(graph, member: str):
    (group,) = [g for g in graph.groups if any(p == member and "conv_out" in k for p, k in g.modules().items())]
    return group


def test_gate_residual_and_concat_writers_are_classified():
    graph = build_graph(GatedResidual().eval(), torch.randn(1, 3, 8, 8), model_name="gated")
    stream = group_of(graph, "stem")
    assert group_of(graph, "project") is stream
    assert stream.shared and stream.summed
    gated = group_of(graph, "expand")
    assert group_of(graph, "se.fc2") is gated  # the gate writes the same channels...
    assert gated.summed is False and gated.shared is False  # ...but multiplies them
    for concat_part in ("left", "right"):
        part = group_of(graph, concat_part)
        assert not part.shared and part.prunable


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_large"])
def test_se_networks_plan_to_half_the_macs_with_default_settings(name):
    entry = get_entry(name)
    model = create_model(name).eval()
    graph = build_graph(model, torch.randn(1, *entry.input_size), model_name=name)
    gated = [g for g in graph.groups if any(p.endswith("fc2") for p in g.modules())]
    assert gated and not any(g.shared for g in gated)
    result = plan_pruning(model, graph, collect_layers(model, (1, *entry.input_size)), Budget.parse("macs", "0.5x"),
                          ranked_by="macs")  # fmt: skip
    assert result.pruned["macs"] <= 0.5 * result.dense["macs"] + 1e-6



class Branches(nn.Module):
    """stem -> 3x3 + 1x1 convs of the stem's output, summed -> head; ``residual`` adds a block over the sum
    (y + outer(inner(y)))."""

    def __init__(self, residual: bool = False) -> None:
        super().__init__()
        self.residual = residual
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.k3, self.k1 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.inner, self.outer = nn.Conv2d(8, 12, 1), nn.Conv2d(12, 8, 1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        s = self.stem(x).relu()
        y = (self.k3(s) + self.k1(s)).relu()
        return self.head(y + self.outer(self.inner(y).relu()) if self.residual else y)


def test_parallel_branches_of_one_input_are_not_a_stream_unless_a_residual_block_adds_to_them():
    from edgeprune.prune import Plan, shrink
    from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, oracle_error

    torch.manual_seed(0)
    model = liven(Branches().eval(), 8)
    graph = build_graph(model, torch.randn(1, 3, 8, 8), model_name="branches")
    summed = group_of(graph, "k3")
    assert group_of(graph, "k1") is summed and summed.summed and summed.parallel
    assert not summed.shared and summed.prunable
    plan = Plan(graph.model_name, graph.fingerprint, {summed.id: summed.prunable_units[::2]})
    pruned, _ = shrink(model, graph, plan)
    assert pruned.k3.out_channels == pruned.k1.out_channels == 4
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 8, 8)) <= ORACLE_TOLERANCE
    stream = group_of(build_graph(Branches(residual=True).eval(), torch.randn(1, 3, 8, 8), model_name="res"), "k3")
    assert stream.shared and not stream.parallel  # outer reads another tensor: a stream through the block


class SelectiveKernel(nn.Module):
    """SKNet's block: 3x3 and 5x5 paths of one input stacked on a new dim, gated by a softmax over the paths
    (from ``select``), summed over the stack; ``radix``: one conv's output split into two slices instead
    (ResNeSt), summed over the split."""

    def __init__(self, radix: bool = False) -> None:
        super().__init__()
        self.radix = radix
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.k3, self.k5 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 5, padding=2)
        self.split = nn.Conv2d(8, 16, 3, padding=1)
        self.reduce, self.select = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 16, 1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        s = self.stem(x).relu()
        if self.radix:
            paths = self.split(s).relu()
            B, C, H, W = paths.shape
            paths = paths.reshape(B, 2, C // 2, H, W)
        else:
            paths = torch.stack([self.k3(s).relu(), self.k5(s).relu()], dim=1)  # B, 2, C, H, W
        attn = self.select(self.reduce(paths.sum(1).mean((2, 3), keepdim=True)).relu())
        attn = torch.softmax(attn.view(attn.shape[0], 2, -1, 1, 1), dim=1)
        return self.head((paths * attn).sum(dim=1))


@pytest.mark.parametrize("radix", [False, True])
def test_a_sum_over_stacked_paths_joins_their_channels_and_the_gate_does_not_make_a_stream(radix):
    from edgeprune.prune import Plan, shrink
    from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, oracle_error

    torch.manual_seed(0)
    model = liven(SelectiveKernel(radix).eval(), 8)
    graph = build_graph(model, torch.randn(1, 3, 8, 8), model_name="selective_kernel")
    paths = group_of(graph, "split" if radix else "k3")
    assert group_of(graph, "select") is paths  # the gate's outputs go with the paths' channels
    if not radix:
        assert group_of(graph, "k5") is paths
    assert paths.prunable and not paths.shared and len(paths.units) == 8
    plan = Plan(graph.model_name, graph.fingerprint, {g.id: g.prunable_units[::2] for g in graph.prunable_groups})
    pruned, _ = shrink(model, graph, plan)
    assert pruned.head.in_channels == 4 and pruned.select.out_channels == 8
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 8, 8)) <= ORACLE_TOLERANCE


class ClassTokenMean(nn.Module):
    """A class token concatenated to the tokens, then a mean over the channel axis: that mixes channels."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 8)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.head = nn.Linear(5, 2)

    def forward(self, x):  # x: B, 4, 3
        t = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.embed(x)], dim=1)  # B, 5, 8
        return self.head(t.mean(-1))


def test_a_mean_over_the_channel_axis_still_mixes_channels_beside_a_class_token():
    graph = build_graph(ClassTokenMean().eval(), torch.randn(1, 4, 3), model_name="cls_mean")
    (embed,) = [g for g in graph.groups if any(p == "embed" and "linear_out" in k for p, k in g.modules().items())]
    assert not embed.prunable and "mixes channels" in embed.frozen
