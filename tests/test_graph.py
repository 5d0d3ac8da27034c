"""Channel groups: the structures the issue names, asserted exactly."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import group_of, model_and_graph
from tiny_nets import opaque_block_cnn

from edgeprune.graph import GraphBuildError, UnsupportedOpError, build_graph
from edgeprune.graph.errors import UntraceableError
from edgeprune.graph.groups import CONV_IN, CONV_OUT, LINEAR_IN, LINEAR_OUT, NORM, REMAP_IN, REMAP_OUT
from edgeprune.models import create_model
from edgeprune.prune import Plan, shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, oracle_error


def test_option_a_shortcut_is_an_index_map_between_two_groups():
    model = create_model("cifar_resnet20").eval()
    graph = build_graph(model, torch.randn(1, 3, 32, 32))
    narrow, _ = group_of(graph, "layer1.2.conv2", CONV_OUT)
    wide, _ = group_of(graph, "layer2.0.conv2", CONV_OUT)
    assert narrow.id != wide.id and (narrow.size, wide.size) == (16, 32)
    assert {m.kind for u in narrow.units for m in u.members if m.path == "layer2.0.shortcut"} == {REMAP_IN}
    assert {m.kind for u in wide.units for m in u.members if m.path == "layer2.0.shortcut"} == {REMAP_OUT}
    # Every block of a stage adds into the stage's one residual stream.
    producers = {m.path for m in wide.units[0].members if m.kind == CONV_OUT}
    assert producers == {"layer2.0.conv2", "layer2.1.conv2", "layer2.2.conv2"}


def test_residual_add_joins_all_producers():
    _, graph, _ = model_and_graph("resnet50")
    g, _ = group_of(graph, "layer1.0.conv3", CONV_OUT)
    producers = {m.path for m in g.units[0].members if m.kind == CONV_OUT}
    assert producers == {"layer1.0.conv3", "layer1.0.downsample.0", "layer1.1.conv3", "layer1.2.conv3"}
    assert g.size == 256 and g.prunable


def test_concat_gives_offset_index_maps():
    _, graph, _ = model_and_graph("densenet121")
    # denselayer1 adds 32 channels after the 64 of the stem: its channel i is input 64+i of layer 2.
    g, u = group_of(graph, "features.denseblock1.denselayer1.conv2", CONV_OUT, 5)
    consumers = {m.path: m.index for m in g.units[u].members if m.kind == CONV_IN}
    assert consumers["features.denseblock1.denselayer2.conv1"] == 64 + 5
    assert consumers["features.denseblock1.denselayer3.conv1"] == 64 + 5
    g0, u0 = group_of(graph, "features.conv0", CONV_OUT, 5)
    assert {m.index for m in g0.units[u0].members if m.kind == CONV_IN} == {5}


def test_depthwise_conv_keeps_in_equal_out():
    _, graph, _ = model_and_graph("mobilenet_v2")
    g, u = group_of(graph, "features.2.conv.1.0", CONV_OUT, 7)  # depthwise 3x3
    # Channel 7 is one unit from the expansion conv, through the depthwise conv, into the projection.
    assert {(m.path, m.kind, m.index) for m in g.units[u].members} == {
        ("features.2.conv.0.0", CONV_OUT, 7), ("features.2.conv.0.1", NORM, 7),
        ("features.2.conv.1.0", CONV_IN, 7), ("features.2.conv.1.0", CONV_OUT, 7), ("features.2.conv.1.1", NORM, 7),
        ("features.2.conv.2", CONV_IN, 7),
    }  # fmt: skip
    assert g.size == 96 and g.prunable  # 16 input channels expanded 6x


def test_grouped_conv_prunes_whole_conv_groups():
    _, graph, _ = model_and_graph("resnext50_32x4d")
    g, u = group_of(graph, "layer1.0.conv2", CONV_OUT, 0)
    conv2 = [m for m in g.units[u].members if m.path == "layer1.0.conv2"]
    assert sorted((m.kind, m.index) for m in conv2) == sorted(
        [(CONV_OUT, i) for i in range(4)] + [(CONV_IN, i) for i in range(4)]
    )
    assert g.size == 32  # 128 channels in 32 conv groups of 4


def test_flatten_to_linear_maps_one_channel_to_hw_features():
    model = create_model("vgg11").eval()
    graph = build_graph(model, torch.randn(1, 3, 64, 64))
    g, u = group_of(graph, "features.18", CONV_OUT, 3)
    feats = sorted(m.index for m in g.units[u].members if m.kind == LINEAR_IN)
    assert feats == list(range(3 * 49, 4 * 49))  # 7x7 positions of channel 3


def test_layer_norm_streams_frozen_mlp_hidden_prunable():
    _, graph, _ = model_and_graph("convnext_tiny")
    stream, _ = group_of(graph, "features.1.0.block.5", LINEAR_OUT)
    assert not stream.prunable
    assert "LayerNorm" in stream.frozen or "layer_norm" in stream.frozen
    hidden, _ = group_of(graph, "features.1.0.block.3", LINEAR_OUT)
    assert hidden.prunable and hidden.size == 4 * 96


def test_vit_mlp_hidden_prunable_attention_frozen():
    model = create_model("vit_b_16", image_size=32).eval()
    graph = build_graph(model, torch.randn(1, 3, 32, 32))
    hidden, _ = group_of(graph, "encoder.layers.encoder_layer_0.mlp.0", LINEAR_OUT)
    assert hidden.prunable and hidden.size == 3072
    stream, _ = group_of(graph, "conv_proj", CONV_OUT)
    assert not stream.prunable


class SpectrumNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)
        self.c = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.c(torch.fft.fft(self.b(self.a(x)), dim=1).real)


def test_unknown_op_names_op_and_path_or_freezes():
    with pytest.raises(UnsupportedOpError, match=r"fft_fft"):
        build_graph(SpectrumNet(), torch.randn(1, 3, 8, 8))
    graph = build_graph(SpectrumNet(), torch.randn(1, 3, 8, 8), freeze_unknown=True)
    g, _ = group_of(graph, "b", CONV_OUT)
    assert not g.prunable and "fft" in g.frozen
    g_a, _ = group_of(graph, "a", CONV_OUT)
    assert g_a.prunable  # upstream of the unknown op is untouched


class BranchyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        y = self.a(x)
        if y.sum() > 0:  # data-dependent control flow: not traceable
            return y
        return -y


def test_untraceable_model_is_a_clear_error():
    with pytest.raises(GraphBuildError, match="cannot trace BranchyNet"):
        build_graph(BranchyNet(), torch.randn(1, 3, 8, 8))


def test_a_block_fx_cannot_follow_is_kept_whole_with_freeze_unknown_and_the_rest_prunes():
    with pytest.raises(UntraceableError, match=r"in block \(ClampLoud\).*pass --freeze-unknown"):
        build_graph(opaque_block_cnn(), torch.randn(1, 3, 6, 6))
    torch.manual_seed(0)
    model = liven(opaque_block_cnn().eval(), 6)
    graph = build_graph(model, torch.randn(1, 3, 6, 6), model_name="test_graph:opaque", freeze_unknown=True)
    around, _ = group_of(graph, "b", CONV_OUT)  # the block's input: frozen, with the reason
    assert not around.prunable and "block (ClampLoud) is kept whole: torch.fx cannot trace" in around.frozen
    after, _ = group_of(graph, "c", CONV_IN)  # the block's output, frozen alike
    assert not after.prunable and "kept whole" in after.frozen
    assert not any(m.path.startswith("block") for g in graph.groups for u in g.units for m in u.members)
    outside = {g.id: g.prunable_units[::2] for g in graph.prunable_groups}  # a's and c's outputs
    assert len(outside) == 2
    plan = Plan(graph.model_name, graph.fingerprint, outside)
    pruned, _ = shrink(model, graph, plan)
    assert pruned.a.out_channels == 4 and pruned.c.out_channels == 4
    assert pruned.block.conv.weight.shape == model.block.conv.weight.shape  # the block as it was
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 6, 6)) <= ORACLE_TOLERANCE


class TopLevelIfNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        return self.a(x) if x.mean() > 0 else self.a(x).flip(-1)  # a branch on the input's values


def test_the_models_own_forward_fx_cannot_follow_stays_an_error_with_freeze_unknown():
    with pytest.raises(UntraceableError, match="cannot trace TopLevelIfNet") as info:
        build_graph(TopLevelIfNet(), torch.randn(1, 3, 8, 8), freeze_unknown=True)
    assert "--freeze-unknown" not in str(info.value)  # nothing to keep whole: the hint would not help
    assert "depends on the tensor's values, not only on its shape" in str(info.value)


class BorrowedSizeNet(nn.Module):
    """Restores a shape read from ``x`` on ``b``'s output (``own=False``: timm's LambdaLayer and FastViT
    attention do so), or on ``x``'s own channels (``own=True``)."""

    def __init__(self, own: bool) -> None:
        super().__init__()
        self.own = own
        self.a, self.b, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = torch.relu(self.a(x))
        B, C, H, W = x.shape
        y = (x if self.own else self.b(x)).flatten(2).transpose(1, 2)  # B, HW, C
        return self.c(y.transpose(1, 2).reshape(B, C, H, W))


def test_a_reshape_to_another_tensors_channel_count_freezes_both_and_to_its_own_prunes():
    graph = build_graph(BorrowedSizeNet(own=False), torch.randn(1, 3, 4, 4))
    for path in ("a", "b"):  # pruning either would break the reshape
        g, _ = group_of(graph, path, CONV_OUT)
        assert not g.prunable and "reshape takes its size along dim 1 from another tensor's shape" in g.frozen
    torch.manual_seed(0)
    model = liven(BorrowedSizeNet(own=True).eval(), 4)
    graph = build_graph(model, torch.randn(1, 3, 4, 4), model_name="test_graph:borrowed")
    g, _ = group_of(graph, "a", CONV_OUT)
    assert g.prunable
    plan = Plan(graph.model_name, graph.fingerprint, {g.id: [1, 2, 5]})
    pruned, _ = shrink(model, graph, plan)
    assert pruned.a.out_channels == 3
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 4, 4)) <= ORACLE_TOLERANCE


class ComputedSizeNet(BorrowedSizeNet):
    """As BorrowedSizeNet, with the borrowed size passed through arithmetic the graph does not follow."""

    def forward(self, x):
        x = torch.relu(self.a(x))
        B, C, H, W = x.shape
        return self.c(self.b(x).flatten(2).reshape(B, C * 1, H, W))


def test_a_pruned_model_that_does_not_run_is_a_plan_error_naming_the_line_and_nothing_more():
    from edgeprune.prune.oracle import check_shrunk
    from edgeprune.prune.plan import PlanError

    model = ComputedSizeNet(own=False).eval()
    graph = build_graph(model, torch.randn(1, 3, 4, 4), model_name="test_graph:computed")
    g, _ = group_of(graph, "a", CONV_OUT)
    plan = Plan(graph.model_name, graph.fingerprint, {g.id: [0, 1]})
    pruned, _ = shrink(model, graph, plan)
    where = r"the pruned model does not run in <top level> \(ComputedSizeNet\) at test_graph.py:\d+ `return self.c"
    with pytest.raises(PlanError, match=where) as info:
        check_shrunk(model, graph, plan, pruned, (3, 4, 4))
    assert "RuntimeError" in str(info.value) and "nothing written" in str(info.value)


class OptionalMaskNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x, mask=None, scale: float = 2.0):
        x = self.a(x) * scale
        if mask is not None:  # timm's Hiera takes an optional mask like this
            x = x * mask.view(x.shape[0], 1, *x.shape[2:])
        return self.b(x)


def test_forward_arguments_after_the_input_are_traced_at_their_defaults():
    graph = build_graph(OptionalMaskNet(), torch.randn(1, 3, 4, 4))
    g, _ = group_of(graph, "a", CONV_OUT)
    assert g.prunable


class HardCodedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 8, 1)
        self.fc = nn.Linear(16 * 4 * 4, 2)

    def forward(self, x):
        p = F.pad(self.a(x), (0, 0, 0, 0, 2, 2))  # 8 -> 12 channels, a hard-coded pad
        flat = self.b(x).view(x.shape[0], 8, 16)  # hard-coded channel count
        return self.fc(torch.cat([p[:, :8], flat.view(x.shape[0], 8, 4, 4)], 1).flatten(1))


def test_hard_coded_channel_counts_are_frozen_with_reasons():
    graph = build_graph(HardCodedNet(), torch.randn(1, 3, 4, 4))
    ga, _ = group_of(graph, "a", CONV_OUT)
    gb, _ = group_of(graph, "b", CONV_OUT)
    assert not ga.prunable and "F.pad" in ga.frozen
    assert not gb.prunable and "reshape" in gb.frozen


def _structure(graph):
    return [(g.size, g.frozen, [sorted((m.path, m.kind, m.index) for m in u.members) for u in g.units])
            for g in graph.groups]  # fmt: skip


def test_graph_is_deterministic():
    _, g1, _ = model_and_graph("mobilenet_v3_small")
    model = create_model("mobilenet_v3_small").eval()
    g2 = build_graph(model, torch.randn(1, 3, 64, 64), model_name="mobilenet_v3_small")
    assert g1.fingerprint == g2.fingerprint and _structure(g1) == _structure(g2)
    # ... and the fingerprint tells apart a model that differs only in its head's width.
    other = build_graph(create_model("mobilenet_v3_small", num_classes=7).eval(), torch.randn(1, 3, 64, 64))
    assert other.fingerprint != g1.fingerprint


class MixedOpsNet(nn.Module):
    """Ops the torchvision set exercises little: interpolate, functional SE, computed split, shuffle."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.down = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.se_fc1, self.se_fc2 = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
        self.left, self.right = nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = F.relu(self.stem(x))
        up = F.interpolate(self.down(x), scale_factor=2.0, mode="nearest")
        x = x + up  # residual across a resample
        gate = torch.sigmoid(self.se_fc2(F.relu(self.se_fc1(x.mean((2, 3), keepdim=True)))))
        x = x * gate
        a, b = torch.split(x, x.shape[1] // 2, dim=1)  # computed split size: equal halves
        x = torch.cat([self.left(a), self.right(b)], 1)
        x = torch.channel_shuffle(x, 2)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def test_mixed_ops_pass_the_oracle():
    import random

    from edgeprune.prune import Plan, shrink
    from edgeprune.prune.oracle import oracle_error

    torch.manual_seed(0)
    model = MixedOpsNet().eval()
    graph = build_graph(model, torch.randn(1, 3, 8, 8))
    stream, _ = group_of(graph, "stem", CONV_OUT)
    # The residual stream joins stem, down (through interpolate) and the SE expansion (gate).
    assert {m.path for m in stream.units[0].members if m.kind == CONV_OUT} == {"stem", "down", "se_fc2"}
    assert stream.prunable
    rng = random.Random(0)
    x = torch.randn(2, 3, 8, 8)
    for _ in range(10):
        keep = {g.id: sorted(rng.sample(g.prunable_units, rng.randint(1, g.size))) for g in graph.prunable_groups}
        plan = Plan(graph.model_name, graph.fingerprint, keep)
        pruned, _ = shrink(model, graph, plan)
        assert oracle_error(model, graph, plan, pruned, x) <= 1e-4


class TableLookupNet(nn.Module):
    """A relative-position-bias style lookup: a plain tensor attribute used as an index (like MaxViT)."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 1)
        self.table = nn.Parameter(torch.randn(10, 8))
        self.index = torch.tensor([3, 1, 4, 1, 5, 9])  # not a buffer: fx turns it into a tensor constant

    def forward(self, x):
        bias = self.table[self.index].mean(0)  # (8,): a gathered bias, frozen with the table
        return self.head(self.conv(x) + bias[None, :, None, None])


def test_tensor_indexing_freezes_indices_and_leaves_the_model_untouched():
    model = TableLookupNet().eval()
    before = set(vars(model))
    graph = build_graph(model, torch.randn(1, 3, 8, 8))
    assert set(vars(model)) == before  # no _tensor_constant left behind by fx
    assert not any("_tensor_constant" in p for g in graph.prunable_groups for p in g.modules())
    conv_group, _ = group_of(graph, "conv", CONV_OUT)
    assert not conv_group.prunable and "parameter table" in conv_group.frozen  # the gathered bias pins it


class ChannelNorm(nn.LayerNorm):
    """A LayerNorm subclass with a forward of its own that normalizes over channels (timm's LayerNorm2d)."""

    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias).permute(0, 3, 1, 2)


class SubclassAndPadNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.norm, self.b = nn.Conv2d(3, 8, 1), ChannelNorm(8), nn.Conv2d(8, 6, 3)
        self.pad, self.c = nn.ReflectionPad2d(1), nn.Conv2d(6, 4, 1)
        self.pos = nn.Conv2d(2, 4, 1)

    def forward(self, x):
        y = self.pad(self.b(self.norm(self.a(x))))  # a spatial pad layer: channels pass through
        grid = torch.fft.fft(torch.ones(1, 2, y.shape[2], y.shape[3]), dim=1).real  # from constants: no channels
        return self.c(y) + self.pos(grid)


def test_own_forward_subclasses_are_traced_into_pad_layers_pass_constants_have_no_channels():
    graph = build_graph(SubclassAndPadNet(), torch.randn(1, 3, 8, 8))
    ga, _ = group_of(graph, "a", CONV_OUT)
    gb, _ = group_of(graph, "b", CONV_OUT)
    gpos, _ = group_of(graph, "pos", CONV_IN)
    # traced into: the layer_norm over the permuted channel axis freezes them, with its weight
    assert not ga.prunable and "layer_norm mixes values across channels" in ga.frozen
    assert gb.prunable and gb.size == 6  # through the reflection pad
    # the constant grid's channels are no layer's output: frozen, so the conv keeps reading both
    assert gpos.frozen.endswith("pos: input channels that no layer produces (a constant)")
    with pytest.raises(UnsupportedOpError):  # the FFT of channels would be unknown; of constants it is fine
        build_graph(nn.Sequential(nn.Conv2d(3, 4, 1), _Spectrum()), torch.randn(1, 3, 8, 8))


class _Spectrum(nn.Module):
    def forward(self, x):
        return torch.fft.fft(x, dim=1).real


class RepeatNet(nn.Module):
    """repeat_interleave along the channels (each channel twice) and along the batch (GCViT's global query); tile."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 6, 1), nn.Conv2d(12, 4, 1)

    def forward(self, x):
        y = torch.relu(self.a(x)).repeat_interleave(2, dim=1)  # channel c feeds b's inputs 2c and 2c + 1
        g = y.mean(0, keepdim=True).repeat_interleave(x.shape[0], dim=0)
        tiled = y.tile((1, 1, 2, 2))[..., 1:5, 2:6]  # tiled over space (Hiera's window embedding), cropped back
        return self.b(y + g + tiled)


def test_repeat_interleave_moves_channels_along_with_their_copies():
    torch.manual_seed(0)
    model = liven(RepeatNet().eval(), 4)
    graph = build_graph(model, torch.randn(2, 3, 4, 4))
    group, _ = group_of(graph, "a", CONV_OUT)
    assert group.prunable and group.size == 6
    plan = Plan(graph.model_name, graph.fingerprint, {group.id: [0, 3, 4]})
    pruned, _ = shrink(model, graph, plan)
    assert pruned.b.in_channels == 6  # each kept channel's two copies
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 4, 4)) <= ORACLE_TOLERANCE


class WindowNet(nn.Module):
    """Tensor.unfold into spatial windows (HaloNet's keys and values): channels move with their windows."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 6, 1), nn.Linear(6, 4)

    def forward(self, x):
        y = torch.relu(self.a(x)).unfold(2, 2, 2).unfold(3, 2, 2)  # B, C, H/2, W/2, 2, 2
        return self.b(y.mean((2, 3, 4, 5)))


def test_tensor_unfold_moves_channels_with_their_windows():
    torch.manual_seed(0)
    model = liven(WindowNet().eval(), 4)
    graph = build_graph(model, torch.randn(2, 3, 4, 4))
    group, _ = group_of(graph, "a", CONV_OUT)
    plan = Plan(graph.model_name, graph.fingerprint, {group.id: [1, 2, 5]})
    pruned, _ = shrink(model, graph, plan)
    assert pruned.b.in_features == 3
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 4, 4)) <= ORACLE_TOLERANCE


class FourierNet(nn.Module):
    """XCiT's position encoding: frequencies built on the weights' device from constants alone (a tensor fx
    stores as a constant once the device is known), sines of them, concatenated to the features."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1), nn.Conv2d(12, 4, 1)

    def forward(self, x):
        y = self.a(x)
        device = self.a.weight.device
        freq = torch.arange(4, device=device).float() + 1
        pos = (torch.arange(y.shape[-1], device=device).float()[:, None] / freq).sin()  # W, 4
        pos = pos.t()[None, :, None, :].expand(y.shape[0], 4, y.shape[2], y.shape[3])
        return self.c(torch.cat([torch.relu(self.b(torch.relu(y))), pos], 1))


def test_a_tensor_built_from_constants_in_forward_carries_no_channels():
    torch.manual_seed(0)
    model = liven(FourierNet().eval(), 4)
    graph = build_graph(model, torch.randn(1, 3, 4, 4))  # no op without a rule meets a channel: no error
    prunable = {m.path for g in graph.prunable_groups for u in g.units for m in u.members if m.kind == CONV_OUT}
    assert prunable == {"a", "b"}
    plan = Plan(graph.model_name, graph.fingerprint, {g.id: g.prunable_units[::2] for g in graph.prunable_groups})
    pruned, _ = shrink(model, graph, plan)
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 4, 4)) <= ORACLE_TOLERANCE
