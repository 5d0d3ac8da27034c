"""torch.nn layers a user's model may hold between two layers that prune: activations, per-channel norms (their
affine and statistics go with each channel), PReLU's per-channel slopes, GLU's gate, Lp pooling, and torch's
transformer encoder layer (traced into: its feed-forward width prunes). Each prunes within the oracle and its
pruned form rebuilds from the arch changes; a softmax or a norm across the channels freezes them."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn as nn

from edgeprune.graph import build_graph
from edgeprune.latency.variants import random_plan
from edgeprune.prune import shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, oracle_error
from edgeprune.prune.serialize import apply_arch


class Between(nn.Module):
    """``mid`` between a conv (or a linear, for token inputs) that writes 8 channels and one that reads them."""

    def __init__(self, mid: nn.Module, tokens: bool = False, reads: int = 8) -> None:
        super().__init__()
        layer = nn.Linear if tokens else nn.Conv2d
        self.a = nn.Linear(3, 8) if tokens else nn.Conv2d(3, 8, 1)
        self.mid, self.b = mid, (nn.Linear(reads, 4) if tokens else layer(reads, 4, 1))

    def forward(self, x):
        return self.b(self.mid(self.a(x)))


PRUNE = {
    "PReLU per channel": lambda: nn.PReLU(8),
    "PReLU shared": lambda: nn.PReLU(),
    "SELU": nn.SELU, "CELU": nn.CELU, "Softsign": nn.Softsign, "LogSigmoid": nn.LogSigmoid,
    "Tanhshrink": nn.Tanhshrink, "Softshrink": nn.Softshrink, "Hardshrink": nn.Hardshrink, "RReLU": nn.RReLU,
    "Threshold": lambda: nn.Threshold(0.1, 0.0),
    "InstanceNorm2d": lambda: nn.InstanceNorm2d(8),
    "InstanceNorm2d affine, statistics": lambda: nn.InstanceNorm2d(8, affine=True, track_running_stats=True),
    "SyncBatchNorm": lambda: nn.SyncBatchNorm(8),
    "LPPool2d": lambda: nn.LPPool2d(2, 2),
}  # fmt: skip


def _check(model: nn.Module, shape: tuple[int, ...], rebuild) -> None:
    torch.manual_seed(0)
    model = liven(model.eval(), 8) if len(shape) == 4 else model.eval()
    x = torch.randn(*shape)
    graph = build_graph(model, x[:1], model_name="test_torch_layers:net")
    assert graph.prunable_groups
    plan = random_plan(graph, random.Random(1), low=0.3)
    pruned, changes = shrink(model, graph, plan)
    assert oracle_error(model, graph, plan, pruned, x) <= ORACLE_TOLERANCE
    fresh = rebuild().eval()
    apply_arch(fresh, changes)  # what reloading a saved pruned model does before loading its weights
    fresh.load_state_dict(pruned.state_dict())
    torch.testing.assert_close(fresh(x), pruned(x))


@pytest.mark.parametrize("name", sorted(PRUNE))
def test_a_layer_between_two_convs_prunes_with_their_channels(name):
    make = lambda: Between(PRUNE[name]())  # noqa: E731
    _check(make(), (2, 3, 8, 8), make)


def test_glu_gates_each_channel_of_one_half_by_the_same_channel_of_the_other():
    make = lambda: Between(nn.GLU(1), reads=4)  # noqa: E731
    model = make()
    graph = build_graph(model.eval(), torch.randn(1, 3, 4, 4), model_name="test_torch_layers:glu")
    (group,) = graph.prunable_groups
    assert group.size == 4 and all(len([m for m in u.members if m.path == "a"]) == 2 for u in group.units)
    _check(make(), (2, 3, 8, 8), make)


def test_a_transformer_encoder_layer_is_traced_into_and_its_feed_forward_width_prunes():
    make = lambda: Between(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), tokens=True)  # noqa: E731
    model = make().eval()
    graph = build_graph(model, torch.randn(1, 5, 3), model_name="test_torch_layers:encoder")
    (group,) = graph.prunable_groups  # the stream is frozen by the attention and the norms
    assert group.size == 16 and set(group.modules()) == {"mid.linear1", "mid.linear2"}
    _check(make(), (2, 5, 3), make)


@pytest.mark.parametrize("mid", [nn.Softmax2d, lambda: nn.Softmin(1), lambda: nn.CrossMapLRN2d(2)])
def test_a_softmax_or_a_norm_across_the_channels_freezes_them(mid):
    graph = build_graph(Between(mid()).eval(), torch.randn(1, 3, 4, 4), model_name="test_torch_layers:mix")
    assert not graph.prunable_groups


def test_a_transposed_conv_prunes_on_both_sides_and_its_weight_is_read_as_in_by_out():
    from conftest import group_of

    from edgeprune.prune.importance import magnitude_scores
    from edgeprune.regularize.slices import group_slices

    make = lambda: Between(nn.ConvTranspose2d(8, 6, 2, stride=2), reads=6)  # noqa: E731
    _check(make(), (2, 3, 4, 4), make)
    model = make().eval()
    graph = build_graph(model, torch.randn(1, 3, 4, 4), model_name="test_torch_layers:tconv")
    written, _ = group_of(graph, "mid", "conv_out")
    assert written.prunable and written.size == 6 and written is group_of(graph, "b", "conv_in")[0]
    before = magnitude_scores(model, written)
    with torch.no_grad():
        model.mid.weight[:, 2] = 0  # output channel 2 of a transposed conv: weight is (in, out, k, k)
    after = magnitude_scores(model, written)
    assert after[2] < before[2] and torch.equal(after[[0, 1, 3, 4, 5]], before[[0, 1, 3, 4, 5]])
    (slices,) = [s for s in group_slices(model, graph) if s.group is written]
    assert {(b.name, b.dim) for b in slices.blocks if b.name == "mid.weight"} == {("mid.weight", 1)}
    grouped = Between(nn.ConvTranspose2d(8, 8, 2, stride=2, groups=2))
    graph = build_graph(grouped.eval(), torch.randn(1, 3, 4, 4), model_name="test_torch_layers:gtconv")
    assert not graph.prunable_groups  # a grouped transposed conv keeps its widths


def test_graph_lists_the_parameters_no_channel_op_reads_in_one_line():
    from edgeprune.cli.inspect import describe_graph

    model = Between(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), tokens=True).eval()
    text = describe_graph(build_graph(model, torch.randn(1, 5, 3), model_name="t:encoder"), all_members=False)
    assert "Frozen, not listed: 8 parameters read in forward only for their device" in text
    assert "mid.norm1.bias" not in text and "mid.linear1" in text


class SpatialSpectrum(nn.Module):
    """A layer of a user's own: a spectrum along the width, each channel on its own."""

    def forward(self, x):
        return torch.fft.fft(x, dim=-1).real


class ChannelSpectrum(nn.Module):
    def forward(self, x):
        return torch.fft.fft(x, dim=1).real


def test_a_layer_of_ones_own_is_declared_once_and_then_prunes_or_freezes():
    from edgeprune.errors import InputError
    from edgeprune.graph import UnsupportedOpError, register_layer

    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(UnsupportedOpError, match="register_layer"):
        build_graph(Between(SpatialSpectrum()).eval(), x)
    register_layer(SpatialSpectrum, "channelwise")
    make = lambda: Between(SpatialSpectrum())  # noqa: E731
    _check(make(), (2, 3, 8, 8), make)
    register_layer(ChannelSpectrum, "mixing")
    assert not build_graph(Between(ChannelSpectrum()).eval(), x, model_name="t:mix").prunable_groups
    with pytest.raises(InputError, match="one of elementwise, channelwise, mixing"):
        register_layer(ChannelSpectrum, "linear")
    with pytest.raises(InputError, match="nn.Module subclass"):
        register_layer(torch.cumsum, "elementwise")
