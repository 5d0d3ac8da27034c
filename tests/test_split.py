"""Splits and chunks under random non-uniform plans: parts sized by a module attribute are tied and the
attribute is rewritten, constant sizes are frozen with a reason; shared modules; untraceable code."""

from __future__ import annotations

import functools

import pytest
import split_nets
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprune.graph import GraphBuildError, build_graph
from edgeprune.graph.errors import UntraceableError
from edgeprune.graph.groups import CONV_OUT
from edgeprune.prune import Plan, load_pruned, shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, oracle_error
from edgeprune.prune.serialize import arch_spec, save_pruned

SIZE = 16
PRUNABLE_SPLITS = ["equal_split", "equal_split_method", "res2net_like", "chunk_net", "listed_split", "csp_like"]


@functools.cache
def lively(name: str):
    """(model, graph) of split_nets:NAME, livened so that the oracle compares real signals."""
    torch.manual_seed(0)
    model = liven(getattr(split_nets, name)(), SIZE)
    return model, build_graph(model, torch.randn(1, 3, SIZE, SIZE), model_name=f"split_nets:{name}")


def x_batch() -> torch.Tensor:
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))


def plans(graph) -> st.SearchStrategy[Plan]:
    """Every prunable group keeps a random number (at least one) of its prunable channels, chosen at random."""

    def per_group(g):
        units = g.prunable_units
        frozen = [i for i in range(g.size) if g.units[i].frozen]
        return st.tuples(st.integers(1, len(units)), st.permutations(units)).map(
            lambda nk: sorted(frozen + list(nk[1][: nk[0]]))
        )

    groups = graph.prunable_groups
    return st.tuples(*(per_group(g) for g in groups)).map(
        lambda kept: Plan(graph.model_name, graph.fingerprint, {g.id: k for g, k in zip(groups, kept)})
    )


@pytest.mark.parametrize("name", PRUNABLE_SPLITS)
def test_random_plans_on_split_models_shrink_exactly(name):
    model, graph = lively(name)
    assert len(graph.prunable_groups) >= 3

    @settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(plan=plans(graph))
    def prop(plan):
        pruned, _ = shrink(model, graph, plan)
        assert oracle_error(model, graph, plan, pruned, x_batch()) <= ORACLE_TOLERANCE

    prop()


def plan_removing(graph, group, count: int) -> Plan:
    prunable = group.prunable_units
    keep = sorted(set(range(group.size)) - set(prunable[-count:]))
    return Plan(graph.model_name, graph.fingerprint, {group.id: keep})


def group_writing(graph, path: str):
    return next(g for g in graph.groups if any(CONV_OUT in k for p, k in g.modules().items() if p == path))


def test_attribute_width_ties_the_parts_and_is_rewritten():
    model, graph = lively("res2net_like")
    (size,) = graph.sizes
    assert (size.path, size.attr, size.index, len(size.positions)) == ("", "width", None, 5)
    group = group_writing(graph, "conv1.0")
    # One group: conv1's 20 outputs (4 parts of 5) tied position by position, and the outputs of the cascade
    # convs whose result is added to the next part.
    assert group.size == 5 and {g for g, _ in size.positions} == {group.id}
    assert {p for p, kinds in group.modules().items() if CONV_OUT in kinds} == {"conv1.0", "convs.0.0", "convs.1.0"}
    assert sum(1 for u in group.units if u.frozen) == 1  # each part keeps a channel
    plan = plan_removing(graph, group, 2)
    pruned, changes = shrink(model, graph, plan)
    assert pruned.width == 3 and model.width == 5 and pruned.conv1[0].out_channels == 12
    assert changes[""] == {"type": "Res2NetLike", "width": 3}
    assert oracle_error(model, graph, plan, pruned, x_batch()) <= ORACLE_TOLERANCE


def test_listed_sizes_are_rewritten_element_by_element(tmp_path):
    model, graph = lively("listed_split")
    sources = {(s.attr, s.index): len(s.positions) for s in graph.sizes}
    assert sources == {("splits", 0): 4, ("splits", 1): 8, ("splits", 2): 6, ("dim_a", None): 8, ("dim_b", None): 10}
    stem = group_writing(graph, "stem.0")
    plan = Plan(graph.model_name, graph.fingerprint, {stem.id: [0, 4, 5, 12, 13, 14, 15, 16, 17]})
    pruned, changes = shrink(model, graph, plan)
    assert pruned.splits == (1, 2, 6) and (pruned.dim_a, pruned.dim_b) == (8, 10)  # their parts kept all
    assert (changes[""]["splits"], model.splits) == ([1, 2, 6], (4, 8, 6))
    assert oracle_error(model, graph, plan, pruned, x_batch()) <= ORACLE_TOLERANCE
    save_pruned(pruned, arch_spec("split_nets:listed_split", {}, graph.fingerprint, changes), tmp_path)
    loaded = load_pruned(tmp_path).eval()
    assert loaded.splits == (1, 2, 6)  # still a tuple, though JSON stored a list
    torch.testing.assert_close(loaded(x_batch()), pruned(x_batch()))


def test_an_attribute_holding_a_multiple_of_the_width_is_rewritten_as_that_multiple():
    model, graph = lively("csp_like")
    (size,) = graph.sizes
    assert (size.attr, size.scale, len(size.positions)) == ("expand_chs", 2, 6)
    plan = plan_removing(graph, group_writing(graph, "expand.0"), 2)
    pruned, changes = shrink(model, graph, plan)
    assert pruned.expand_chs == 8 and changes[""] == {"type": "CspLike", "expand_chs": 8}
    assert oracle_error(model, graph, plan, pruned, x_batch()) <= ORACLE_TOLERANCE


def test_sizes_that_no_attribute_holds_are_frozen_with_a_reason():
    _, graph = lively("constant_split")
    assert graph.sizes == []  # the literal 4, and a width the code also multiplies by: neither is rewritable
    stem, stem2 = group_writing(graph, "stem.0"), group_writing(graph, "stem2.0")
    assert stem.frozen == "<top level> (split): split size 4 is a constant in the model's code"
    assert stem2.frozen == "<top level> (split_1): split size 4 is a constant in the model's code"


class LoopWidth(nn.Module):
    """The split width is also a loop count: patching it would change the graph, so it is not rewritten."""

    def __init__(self) -> None:
        super().__init__()
        self.width, self.stem, self.conv = 4, nn.Conv2d(3, 8, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        a, b = torch.split(self.stem(x), self.width, 1)
        for _ in range(self.width):
            a = self.conv(a)
        return torch.cat([a, b], 1)


def test_a_width_that_also_counts_a_loop_is_frozen_and_the_retrace_stops_early():
    graph = build_graph(LoopWidth(), torch.randn(1, 3, 8, 8))
    assert graph.sizes == [] and group_writing(graph, "stem").frozen.endswith("is a constant in the model's code")


def test_unbind_over_channels_and_a_shorter_last_part_are_frozen():
    _, graph = lively("unbind_net")
    assert group_writing(graph, "stem.0").frozen == "<top level> (unbind): unbind over a channel axis"

    class Leftover(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.width, self.conv = 5, nn.Conv2d(3, 12, 1)

        def forward(self, x):
            return torch.cat(torch.split(self.conv(x), self.width, 1)[::-1], 1)

    graph = build_graph(Leftover(), torch.randn(1, 3, 8, 8))
    assert "split by 5 leaves a shorter last part" in group_writing(graph, "conv").frozen


def test_saved_split_model_reloads_with_its_widths(tmp_path):
    model, graph = lively("res2net_like")
    plan = plan_removing(graph, group_writing(graph, "conv1.0"), 3)
    pruned, changes = shrink(model, graph, plan)
    save_pruned(pruned, arch_spec("split_nets:res2net_like", {}, graph.fingerprint, changes), tmp_path)
    loaded = load_pruned(tmp_path).eval()
    assert loaded.width == 2
    torch.testing.assert_close(loaded(x_batch()), pruned(x_batch()))


class SharedConv(nn.Module):
    """One conv applied twice: its input and output channels are the same decision."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = self.b(torch.relu(self.bn(self.b(torch.relu(self.a(x))))))
        return self.fc(y.mean((2, 3)))


def test_a_module_called_twice_prunes_consistently():
    model = liven(SharedConv(), SIZE)
    graph = build_graph(model, torch.randn(1, 3, SIZE, SIZE))
    (group,) = graph.prunable_groups
    assert set(group.modules()) == {"a", "b", "bn", "fc"} and group.size == 8
    plan = Plan(graph.model_name, graph.fingerprint, {group.id: [1, 4, 6]})
    pruned, _ = shrink(model, graph, plan)
    assert pruned.b.weight.shape == (3, 3, 3, 3)
    assert oracle_error(model, graph, plan, pruned, x_batch()) <= ORACLE_TOLERANCE


class _Gate(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x  # Python control flow on a tensor's value


def test_code_fx_cannot_follow_is_an_error_naming_module_and_line():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(nn.ReLU(), _Gate()))
    with pytest.raises(UntraceableError) as info:
        build_graph(model, torch.randn(1, 3, 8, 8))
    msg = str(info.value)
    assert isinstance(info.value, GraphBuildError)
    assert "in 1.1 (_Gate)" in msg and "test_split.py" in msg and "x if x.sum() > 0 else -x" in msg
    assert "control flow" in msg and "Traceback" not in msg


class _ListChunk(nn.Module):
    """A C2f-like block fx cannot follow (list() of a chunk), with its half width in ``c``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.c, self.cv1, self.cv2 = c, nn.Conv2d(c, 2 * c, 1), nn.Conv2d(3 * c, c, 1)
        self.m = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


def _list_chunk_traceable(m: _ListChunk, x):
    parts = m.cv1(x).split((m.c, m.c), 1)
    return m.cv2(torch.cat([parts[0], parts[1], m.m(parts[1])], 1))


class _OwnForward(_ListChunk):
    def forward(self, x):  # a forward of its own: the substitute for _ListChunk does not apply
        return super().forward(x)


def test_a_model_names_trace_time_forwards_for_blocks_fx_cannot_follow():
    def net(block: type, forwards: dict | None) -> nn.Module:
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), block(8), nn.ReLU(), nn.Conv2d(8, 4, 1))
        model.fx_forwards = forwards
        return liven(model, SIZE)

    with pytest.raises(UntraceableError, match=r"in 2 \(_ListChunk\)"):
        build_graph(net(_ListChunk, None), x_batch()[:1])
    with pytest.raises(UntraceableError, match=r"in 2 \(_OwnForward\)"):
        build_graph(net(_OwnForward, {_ListChunk: _list_chunk_traceable}), x_batch()[:1])
    torch.manual_seed(0)
    model = net(_ListChunk, {_ListChunk: _list_chunk_traceable})
    graph = build_graph(model, x_batch()[:1], model_name="test_split:list_chunk")
    assert [(s.path, s.attr) for s in graph.sizes] == [("2", "c")]  # found on the block: it ran as its forward
    (halves,) = [g for g in graph.prunable_groups if CONV_OUT in g.modules().get("2.cv1", ())]
    plan = Plan(graph.model_name, graph.fingerprint, {halves.id: [0, 3, 5]})
    pruned, _ = shrink(model, graph, plan)
    assert pruned[2].c == 3 and pruned[2].cv1.out_channels == 6
    assert oracle_error(model, graph, plan, pruned, x_batch()) <= ORACLE_TOLERANCE  # the model's own forward
