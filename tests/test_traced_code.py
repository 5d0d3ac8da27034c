"""Python code in a model's forward() that reads traced values: followed at the traced input (branch_values.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import group_of
from tiny_nets import PadToFour

from edgeprune.graph import UnsupportedOpError, build_graph
from edgeprune.graph.branch_values import values_used
from edgeprune.graph.errors import UntraceableError
from edgeprune.graph.fxtrace import trace_model
from edgeprune.graph.groups import CONV_OUT
from edgeprune.prune import Plan, shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, oracle_error


def _every_other(graph) -> Plan:
    return Plan(graph.model_name, graph.fingerprint, {g.id: g.prunable_units[::2] for g in graph.prunable_groups})


class ShapeCodeNet(nn.Module):
    """Python code on traced shapes and devices, as timm's MobileViT, EfficientViT and NesT have: a pad decided
    by the size, a grid side computed with ``math.sqrt``, an autocast on the tensor's own device."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 4, 1)
        self.block = PadToFour(8)

    def forward(self, x):
        y = torch.relu(self.a(x))
        with torch.autocast(device_type=y.device.type, enabled=False):
            y = self.block(y)  # pads 6 -> 8 at a 6-px input; no pad at 8 px
        B, C, H, W = y.shape
        side = int(math.sqrt(H * W))
        y = y.flatten(2).reshape(B, C, side, side)
        return self.c(torch.relu(self.b(y)))


@pytest.mark.parametrize("side", [6, 8])
def test_code_on_shapes_and_devices_is_traced_at_the_example_and_every_layer_prunes(side):
    torch.manual_seed(0)
    model = liven(ShapeCodeNet().eval(), side)
    x = torch.randn(1, 3, side, side)
    graph = build_graph(model, x, model_name="test_graph:shape_code")
    pads = sum(n.target is F.pad for n in trace_model(model, example=x).nodes)
    assert pads == (side % 4 != 0)  # the branch the model takes at this size, and only it
    assert {m.path for g in graph.prunable_groups for u in g.units for m in u.members} >= {"a", "block.conv", "b"}
    plan = _every_other(graph)
    pruned, _ = shrink(model, graph, plan)
    assert pruned.block.conv.out_channels == 4
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, side, side)) <= ORACLE_TOLERANCE


class ChannelIfNet(nn.Module):
    """Scales by the channel count it sees: pruning would change which branch runs."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.a(x)
        if y.shape[1] == 8:
            y = y * 2
        return self.c(torch.relu(self.b(torch.relu(y))))


def test_a_branch_on_a_channel_count_freezes_those_channels_and_only_them():
    graph = build_graph(ChannelIfNet().eval(), torch.randn(1, 3, 4, 4))
    read, _ = group_of(graph, "a", CONV_OUT)
    assert not read.prunable and "the model branches on this channel count" in read.frozen
    assert "test_traced_code.py:" in read.frozen and "`if y.shape[1] == 8:`" in read.frozen
    assert group_of(graph, "b", CONV_OUT)[0].prunable


def test_a_retrace_replays_the_values_the_first_trace_read():
    model = ShapeCodeNet().eval()
    x = torch.randn(1, 3, 6, 6)
    first = trace_model(model, example=x)
    again = trace_model(model, replay=values_used(first))  # no example: the values come from the first trace
    assert [n.format_node() for n in again.nodes] == [n.format_node() for n in first.nodes]
    with pytest.raises(UntraceableError, match="the retrace read a value the first trace did not"):
        trace_model(model, replay=values_used(first)[:1])


class PositionTableNet(nn.Module):
    """Builds a table from the input's size, fills it by item assignment and caches it on the module, as timm's
    ConViT does with its relative positions."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)
        self.register_buffer("table", torch.zeros(1, 1, 1), persistent=False)

    def forward(self, x):
        y = torch.relu(self.a(x))
        B, C, H, W = y.shape
        if self.table.shape[-1] != H * W:
            table = torch.zeros(1, 1, H * W)
            table[:, :, 0] = 1.0
            table[:, :, 1:] = torch.arange(1, H * W) / (H * W)
            self.table = table
        return self.b(y + self.table.expand(B, -1, -1).reshape(B, 1, H, W))


@pytest.mark.parametrize("cached", [False, True])
def test_a_table_built_from_sizes_and_assigned_into_traces_and_the_model_keeps_its_own_state(cached):
    torch.manual_seed(0)
    model = liven(PositionTableNet().eval(), 4)  # runs the model: the table is cached at 4 px
    if not cached:
        model.table = torch.zeros(1, 1, 1)  # as built: the trace takes the branch that fills it
    before = model.table.clone()
    graph = build_graph(model, torch.randn(1, 3, 4, 4), model_name="test_traced_code:table")
    assert isinstance(model.table, torch.Tensor) and torch.equal(model.table, before)  # no proxy left behind
    assert list(graph.traced_values.values()) == [[not cached]]
    if cached:
        return  # the cached table is read as a buffer (a parameter-like tensor), not as a constant
    assert group_of(graph, "a", CONV_OUT)[0].prunable
    plan = _every_other(graph)
    pruned, _ = shrink(model, graph, plan)
    assert pruned.a.out_channels == 4
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 4, 4)) <= ORACLE_TOLERANCE


class StateFlagNet(nn.Module):
    """Branches on a buffer's value (model state, not the input's): plain Python on a tensor fx would not trace."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)
        self.register_buffer("scaled", torch.tensor(True))
        self.register_buffer("steps", torch.tensor([1, 2]))  # integers: no channels

    def forward(self, x):
        y = self.a(x)
        if self.scaled:
            y = y * 2
        for i in range(len(self.steps)):  # Python over a buffer's length
            y = y + self.steps[i]
        return self.b(y.relu())


def test_a_branch_on_a_buffers_value_is_model_state_and_traced():
    graph = build_graph(StateFlagNet().eval(), torch.randn(1, 3, 4, 4))
    assert group_of(graph, "a", CONV_OUT)[0].prunable
    assert list(graph.traced_values.values()) == [[True]]  # the condition (a length is a size, not listed)


class WriteIntoFeaturesNet(nn.Module):
    """Assigns into a fixed range of a tensor's channels (``y[:, :2] = 0``): after pruning, those would be other
    channels."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.a(x)
        y[:, :2] = 0.0
        return self.c(torch.relu(self.b(torch.relu(y))))


def test_an_assignment_into_a_fixed_range_of_channels_freezes_them():
    model = WriteIntoFeaturesNet().eval()
    graph = build_graph(model, torch.randn(1, 3, 4, 4), model_name="test_traced_code:write")
    written, _ = group_of(graph, "a", CONV_OUT)
    assert not written.prunable and "fixed range of channels" in written.frozen
    assert group_of(graph, "b", CONV_OUT)[0].prunable
    plan = _every_other(graph)
    pruned, _ = shrink(model, graph, plan)
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 4, 4)) <= ORACLE_TOLERANCE


class WriteRegionNet(nn.Module):
    """Adds one branch into a corner of another in place (MViTv2 adds relative positions into a region of its
    attention map): every channel is written, at some positions."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 6, 1), nn.Conv2d(3, 6, 1), nn.Conv2d(6, 4, 1)

    def forward(self, x):
        y = self.a(x)
        y[:, :, 1:, 1:] = y[:, :, 1:, 1:] + self.b(x)[:, :, 1:, 1:]
        return self.c(y)


class WriteIntoZerosNet(nn.Module):
    """Writes a layer's output into a tensor of zeros: the zeros would take the layer's channels in place."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.c = nn.Conv2d(3, 6, 1), nn.Conv2d(6, 4, 1)

    def forward(self, x):
        canvas = x.new_zeros(x.shape[0], 6, 4, 4)
        canvas[:, :, :2] = self.a(x)[:, :, :2]
        return self.c(canvas)


def test_an_assignment_over_every_channel_joins_the_written_channels_and_prunes():
    torch.manual_seed(0)
    model = liven(WriteRegionNet().eval(), 4)
    graph = build_graph(model, torch.randn(1, 3, 4, 4), model_name="test_traced_code:region")
    group, _ = group_of(graph, "a", CONV_OUT)
    assert group.prunable and group is group_of(graph, "b", CONV_OUT)[0] is group_of(graph, "c", "conv_in")[0]
    plan = Plan(graph.model_name, graph.fingerprint, {group.id: [1, 4]})
    pruned, _ = shrink(model, graph, plan)
    assert pruned.a.out_channels == pruned.b.out_channels == pruned.c.in_channels == 2
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 4, 4)) <= ORACLE_TOLERANCE
    with pytest.raises(UnsupportedOpError, match="setitem"):
        build_graph(WriteIntoZerosNet().eval(), torch.randn(1, 3, 4, 4))


def test_graph_lists_the_code_that_read_traced_values_and_what_it_read():
    from edgeprune.cli.inspect import describe_graph, graph_json

    graph = build_graph(ShapeCodeNet().eval(), torch.randn(1, 3, 6, 6), model_name="test_traced_code:shape_code")
    text = describe_graph(graph, all_members=False)
    assert "Python code that read a traced value (its path at input (1, 3, 6, 6)" in text
    assert "tiny_nets.py:" in text and "`if x.shape[-1] % 4:` -> True" in text  # PadToFour pads 6 px to 8
    assert "test_traced_code.py:" in text and "`side = int(math.sqrt(H * W))` -> 8" in text
    listed = {v["code"].split(" ", 1)[1]: v["values"] for v in graph_json(graph)["traced_values"]}
    assert listed["`side = int(math.sqrt(H * W))`"] == ["8"]
    plain = build_graph(nn.Sequential(nn.Conv2d(3, 4, 1)).eval(), torch.randn(1, 3, 4, 4))
    assert plain.traced_values == {} and "traced value" not in describe_graph(plain, all_members=False)
