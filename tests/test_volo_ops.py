"""Ops timm's VOLO uses: sliding windows as columns (nn.Unfold, F.unfold) and back (F.fold), and a max over
tokens. Channels keep apart through them and prune."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import group_of

from edgeprune.graph import build_graph
from edgeprune.graph.groups import CONV_OUT
from edgeprune.prune import Plan, shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, oracle_error


class ColumnsNet(nn.Module):
    """3x3 windows as columns and folded back (each value summed over the windows that hold it, VOLO's outlook
    attention), then 2x2 patches as a linear layer's features."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 6, 1)
        self.patches = nn.Unfold(2, stride=2)
        self.fc = nn.Linear(6 * 4, 5)

    def forward(self, x):
        y = self.a(x).relu()
        z = F.fold(F.unfold(y, 3, padding=1), (4, 4), 3, padding=1)
        t = self.patches(self.b(z).relu()).transpose(1, 2)  # B, 4 patches, 6 channels x 2x2
        return self.fc(t)


def test_unfold_and_fold_keep_each_channel_with_its_windows_and_prune():
    torch.manual_seed(0)
    model = liven(ColumnsNet().eval(), 4)
    graph = build_graph(model, torch.randn(1, 3, 4, 4), model_name="test_volo_ops:columns")
    folded, _ = group_of(graph, "a", CONV_OUT)
    assert folded is group_of(graph, "b", "conv_in")[0] and folded.prunable and folded.size == 4
    patched, _ = group_of(graph, "b", CONV_OUT)
    assert patched.prunable and patched.size == 6
    plan = Plan(graph.model_name, graph.fingerprint, {folded.id: [1, 2], patched.id: [0, 3, 5]})
    pruned, _ = shrink(model, graph, plan)
    assert pruned.b.in_channels == 2 and pruned.fc.in_features == 3 * 4  # each kept channel's 2x2 features
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 4, 4)) <= ORACLE_TOLERANCE


class RunsFoldNet(nn.Module):
    """Folds a conv's 8 channels as columns of 2x2 windows: channels 0-3 sum into one output channel, 4-7 into
    the other."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(2, 4, 1)

    def forward(self, x):
        return self.b(F.fold(self.a(x).flatten(2), (5, 5), 2))  # B, 8, 16 -> B, 2, 5, 5


def test_a_fold_joins_the_rows_that_sum_into_one_channel():
    torch.manual_seed(0)
    model = liven(RunsFoldNet().eval(), 4)
    graph = build_graph(model, torch.randn(1, 3, 4, 4), model_name="test_volo_ops:runs")
    group, _ = group_of(graph, "a", CONV_OUT)
    per_unit = [sum(m.path == "a" and m.kind == CONV_OUT for m in u.members) for u in group.units]
    assert per_unit == [4, 4] and group is group_of(graph, "b", "conv_in")[0]
    plan = Plan(graph.model_name, graph.fingerprint, {group.id: [0]})
    pruned, _ = shrink(model, graph, plan)
    assert pruned.a.out_channels == 4 and pruned.b.in_channels == 1
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, 4, 4)) <= ORACLE_TOLERANCE


class MaxOverTokensNet(nn.Module):
    """The larger of two branches, then the most active token (VOLO's auxiliary head: ``aux.max(1)[0]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.fc = nn.Linear(3, 6), nn.Linear(3, 6), nn.Linear(6, 2)

    def forward(self, x):  # B, tokens, 3
        y = torch.max(self.a(x), self.b(x)).relu()
        return self.fc(y.max(1)[0] + y.min(dim=1).values)


def test_max_and_min_are_elementwise_between_tensors_and_reductions_over_a_dim():
    torch.manual_seed(0)
    model = MaxOverTokensNet().eval()
    graph = build_graph(model, torch.randn(1, 4, 3), model_name="test_volo_ops:max")
    group, _ = group_of(graph, "a", "linear_out")
    assert group is group_of(graph, "b", "linear_out")[0] is group_of(graph, "fc", "linear_in")[0]
    plan = Plan(graph.model_name, graph.fingerprint, {group.id: [0, 2, 5]})
    pruned, _ = shrink(model, graph, plan)
    assert pruned.fc.in_features == 3
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 4, 3)) <= ORACLE_TOLERANCE
