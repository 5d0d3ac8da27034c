"""The correctness oracle on every model of the fast set: shrunk == masked original, for random plans."""

from __future__ import annotations

import random

import pytest
import torch
from conftest import model_and_graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprune.prune import Plan, shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE as TOLERANCE
from edgeprune.prune.oracle import is_lively, oracle_error


def draw_plan(data: st.DataObject, graph) -> Plan:
    """Per prunable group: keep all, a random subset, a single channel, or (a whole residual branch) none."""
    keep = {}
    for group in graph.prunable_groups:
        units = group.prunable_units
        mode = data.draw(st.sampled_from(["all", "subset", "single"] + ["none"] * (group.id in graph.branches)))
        if mode == "all":
            continue
        if mode == "none":
            keep[group.id] = []
            continue
        frozen = [i for i in range(group.size) if group.units[i].frozen]
        n = 1 if mode == "single" else data.draw(st.integers(1, len(units)))
        if n == len(units) and frozen == [] and n == group.size:
            continue
        chosen = random.Random(data.draw(st.integers(0, 2**32))).sample(units, n)
        keep[group.id] = sorted(frozen + chosen)
    return Plan(graph.model_name, graph.fingerprint, keep)


def check_plan(model, graph, size, plan) -> float:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    pruned, _ = shrink(model, graph, plan)
    if plan.removed(graph):
        assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    return oracle_error(model, graph, plan, pruned, x)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def _oracle_property(name, data):
    model, graph, size = model_and_graph(name)
    err = check_plan(model, graph, size, draw_plan(data, graph))
    assert err <= TOLERANCE, f"{name}: shrunk model deviates from the masked original: {err:.2e}"


def test_oracle_random_plans(fast_model):
    name = fast_model[0]
    _oracle_property(name)


def test_models_are_lively(fast_model):
    """Guards the oracle against vacuous passes: outputs must depend on the input."""
    name, model, graph, size = fast_model
    assert is_lively(model, torch.randn(2, 3, size, size)), f"{name} output does not depend on its input"


def test_every_group_to_one_channel(fast_model):
    name, model, graph, size = fast_model
    keep = {}
    for g in graph.prunable_groups:
        frozen = [i for i in range(g.size) if g.units[i].frozen]
        keep[g.id] = sorted(frozen + g.prunable_units[-1:])
    assert check_plan(model, graph, size, Plan(name, graph.fingerprint, keep)) <= TOLERANCE


@pytest.mark.parametrize("name", ["cifar_resnet20", "resnet50", "shufflenet_v2_x0_5"])
def test_oracle_detects_wrong_surgery(name):
    """Negative control: shrinking different channels than the plan says must fail the oracle."""
    model, graph, size = model_and_graph(name)
    group = max(graph.prunable_groups, key=lambda g: g.size)
    units = group.prunable_units
    plan = Plan(name, graph.fingerprint, {group.id: units[1:]})
    wrong = Plan(name, graph.fingerprint, {group.id: units[:1] + units[2:]})
    wrong_model, _ = shrink(model, graph, wrong)
    assert oracle_error(model, graph, plan, wrong_model, torch.randn(2, 3, size, size)) > TOLERANCE


def test_a_model_whose_output_ignores_its_input_is_checked_again_on_a_livened_copy(monkeypatch):
    """At random init a model can output a constant (here: its last norm's scale is 0), and then any surgery
    passes; the check applies the plan to a livened copy too, where a faulty surgery shows."""
    import importlib

    import torch.nn as nn

    from edgeprune.graph import build_graph
    from edgeprune.prune.oracle import check_shrunk
    from edgeprune.prune.plan import PlanError

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8)).eval()
    nn.init.zeros_(model[3].weight)  # a dead output: the bias alone, whatever the input
    graph = build_graph(model, torch.randn(1, 3, 8, 8), model_name="test_oracle:dead")
    (group,) = [g for g in graph.prunable_groups if g.size == 8 and "0" in g.modules()]
    plan = Plan(graph.model_name, graph.fingerprint, {group.id: [0, 2, 4, 6]})
    x = torch.randn(2, 3, 8, 8)
    assert not is_lively(model, x)
    pruned, _ = shrink(model, graph, plan)
    assert check_shrunk(model, graph, plan, pruned, (3, 8, 8)) <= TOLERANCE  # a correct surgery passes

    oracle_mod = importlib.import_module("edgeprune.prune.oracle")
    real = oracle_mod.shrink

    def faulty(m, g, p, means=None):  # a surgery that keeps the wrong input channels of the second conv
        out, changes = real(m, g, p, means)
        out[2].weight.data = out[2].weight.data.flip(1)
        return out, changes

    monkeypatch.setattr(oracle_mod, "shrink", faulty)
    bad, _ = faulty(model, graph, plan)
    assert oracle_error(model, graph, plan, bad, x) <= TOLERANCE  # the dead model cannot tell
    with pytest.raises(PlanError, match="deviates from the masked original"):
        check_shrunk(model, graph, plan, bad, (3, 8, 8))
