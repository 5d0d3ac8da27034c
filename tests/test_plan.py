"""Plans, bad input, and the saved form of pruned models."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import group_of

from edgeprune.graph import build_graph
from edgeprune.graph.groups import CONV_OUT
from edgeprune.models import create_model
from edgeprune.prune import (
    ArchSpecError,
    Plan,
    PlanError,
    load_pruned,
    magnitude_scores,
    prune_model,
    save_pruned,
    shrink,
    uniform_plan,
)
from edgeprune.prune.oracle import liven, oracle_error


@pytest.fixture(scope="module")
def r20():
    model = liven(create_model("cifar_resnet20"))
    return model, build_graph(model, torch.randn(1, 3, 32, 32), model_name="cifar_resnet20")


def _inner_group(graph):
    return next(g for g in graph.prunable_groups if g.size == 16)


@pytest.mark.parametrize(
    "make_keep, message",
    [
        (lambda g: {g.id: []}, "empties group"),
        (lambda g: {g.id: [0, 0, 1]}, "twice"),
        (lambda g: {g.id: [0, 99]}, "out of range"),
        (lambda g: {g.id: [-1, 2]}, "out of range"),
        (lambda g: {999: [0]}, "names group 999"),
    ],
)
def test_bad_plans_are_rejected_before_any_change(r20, make_keep, message):
    model, graph = r20
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = Plan("cifar_resnet20", graph.fingerprint, make_keep(_inner_group(graph)))
    with pytest.raises(PlanError, match=message):
        shrink(model, graph, plan)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_frozen_group_cannot_be_pruned(r20):
    model, graph = r20
    frozen = next(g for g in graph.groups if not g.prunable)
    with pytest.raises(PlanError, match="frozen"):
        shrink(model, graph, Plan("cifar_resnet20", graph.fingerprint, {frozen.id: [0]}))


def test_plan_for_another_model_is_rejected(r20):
    model, graph = r20
    other = create_model("cifar_resnet32")
    other_graph = build_graph(other, torch.randn(1, 3, 32, 32), model_name="cifar_resnet32")
    plan = uniform_plan(other, other_graph, 0.5)
    with pytest.raises(PlanError, match="fingerprint"):
        shrink(model, graph, plan)


def test_plan_json_round_trip_and_malformed_files(tmp_path, r20):
    model, graph = r20
    plan = uniform_plan(model, graph, 0.4)
    plan.save(tmp_path / "plan.json")
    again = Plan.load(tmp_path / "plan.json")
    assert again == plan and again.removed(graph)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PlanError, match="not valid JSON"):
        Plan.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something/9"}))
    with pytest.raises(PlanError, match="not an edgeprune plan"):
        Plan.load(tmp_path / "other.json")


def test_uniform_plan_removes_lowest_energy_and_respects_ratio(r20):
    model, graph = r20
    plan = uniform_plan(model, graph, 0.25)
    removed = plan.removed(graph)
    assert set(removed) == {g.id for g in graph.prunable_groups}  # widths 16, 32, 64: a quarter of each goes
    for gid, gone in removed.items():
        group = graph.groups[gid]
        assert len(gone) == int(0.25 * group.size)
        scores = magnitude_scores(model, group)
        kept = [i for i in group.prunable_units if i not in gone]
        assert scores[gone].max() < scores[kept].min(), f"group {gid} removed a channel above one it kept"
    with pytest.raises(PlanError):
        uniform_plan(model, graph, 1.0)


def test_channel_energy_is_every_weight_slice_of_the_channel(r20):
    """Channel 5 of layer1.0's inner group: conv1's filter, bn1's gamma, and conv2's input slice."""
    model, graph = r20
    block = model.layer1[0]
    group, u = group_of(graph, "layer1.0.conv1", CONV_OUT, 5)
    expected = block.conv1.weight[5].pow(2).sum() + block.bn1.weight[5] ** 2 + block.conv2.weight[:, 5].pow(2).sum()
    assert magnitude_scores(model, group)[u].item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("name,size", [("cifar_resnet20", 32), ("mobilenet_v3_small", 64), ("densenet121", 32)])
def test_save_and_reload_from_spec_and_safetensors(tmp_path, name, size):
    model = liven(create_model(name), size)
    graph = build_graph(model, torch.randn(1, 3, size, size), model_name=name)
    plan = uniform_plan(model, graph, 0.3)
    pruned, spec = prune_model(model, graph, plan)
    save_pruned(pruned, spec, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["arch.json", "weights.safetensors"]
    reloaded = load_pruned(tmp_path / "m").eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(reloaded(x), pruned.eval()(x))
    assert oracle_error(model, graph, plan, reloaded, x) <= 1e-4


def test_reload_errors(tmp_path, r20):
    model, graph = r20
    with pytest.raises(FileNotFoundError, match="arch.json"):
        load_pruned(tmp_path)
    pruned, spec = prune_model(model, graph, uniform_plan(model, graph, 0.3))
    save_pruned(pruned, spec, tmp_path / "a")
    spec["changes"]["conv1"]["out_channels"] = 15  # weights no longer fit the architecture
    (tmp_path / "a" / "arch.json").write_text(json.dumps(spec))
    with pytest.raises(ArchSpecError, match="does not fit"):
        load_pruned(tmp_path / "a")
    (tmp_path / "a" / "arch.json").write_text("[]")
    with pytest.raises(ArchSpecError, match="not an edgeprune arch spec"):
        load_pruned(tmp_path / "a")
