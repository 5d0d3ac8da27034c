"""Removing whole residual branches: which groups qualify, exact shrinking, export, reload, planning."""

from __future__ import annotations

from dataclasses import replace

import onnx
import pytest
import torch
import torch.nn as nn
from conftest import model_and_graph

from edgeprune.export import export_onnx, run_onnxruntime
from edgeprune.graph import build_graph
from edgeprune.latency.layers import collect_layers
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import Calibration
from edgeprune.models import create_model
from edgeprune.models.layers import BranchConstant, EmptyChannels
from edgeprune.paths import shipped_dir
from edgeprune.plan.planner import Budget, PlanConstraints, plan_pruning
from edgeprune.prune import Plan, PlanError, masked_forward, relative_error, shrink
from edgeprune.prune.oracle import liven
from edgeprune.prune.serialize import arch_spec, load_pruned, save_pruned
from edgeprune.targets import load_target


def _convs(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d) for m in model.modules())


def _without_branches(graph, every: int = 1) -> Plan:
    return Plan(graph.model_name, graph.fingerprint, {gid: [] for gid in list(graph.branches)[::every]})


@pytest.mark.parametrize(("name", "count", "tail"), [
    ("cifar_resnet56", 27, "layer1.0.conv2"),  # every block, the three that change width included
    ("mobilenet_v2", 10, "features.3.conv.2"),  # the blocks with a residual addition
    ("resnet50", 0, None),  # a bottleneck's inside is two groups: emptying one leaves the other running
])  # fmt: skip
def test_groups_that_are_a_whole_branch(name, count, tail):
    _, graph, _ = model_and_graph(name)
    assert len(graph.branches) == count
    if tail:
        assert tail in {b.tail for b in graph.branches.values()}
    for gid, branch in graph.branches.items():
        assert set(graph.groups[gid].modules()) == {*branch.inner_layers, branch.tail}
        assert not graph.groups[gid].shared


@pytest.mark.parametrize("name", ["cifar_resnet56", "mobilenet_v2"])
def test_removed_branches_match_the_masked_model_and_stop_running(name):
    model, graph, size = model_and_graph(name)
    plan = _without_branches(graph, every=2)
    pruned, _ = shrink(model, graph, plan)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert relative_error(pruned.eval()(x), masked_forward(model, graph, plan, x)) < 1e-4
    removed = len(plan.keep)
    assert sum(isinstance(m, BranchConstant) for m in pruned.modules()) == removed
    assert _convs(pruned) <= _convs(model) - 2 * removed


class _ActBlocks(nn.Module):
    """Two residual blocks whose branch ends conv -> norm -> activation before the addition: the first calls
    its own SiLU once, the second calls one ReLU twice (inside the branch and at its end)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a1, self.a2 = nn.Conv2d(8, 6, 3, padding=1), nn.Conv2d(6, 8, 3, padding=1)
        self.na, self.act_a = nn.BatchNorm2d(8), nn.SiLU()
        self.b1, self.b2 = nn.Conv2d(8, 6, 3, padding=1), nn.Conv2d(6, 8, 3, padding=1)
        self.nb, self.relu = nn.BatchNorm2d(8), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.act_a(self.na(self.a2(self.a1(x))))
        return x + self.relu(self.nb(self.b2(self.relu(self.b1(x)))))


def test_a_tail_activation_folds_into_the_constant_when_only_this_call_uses_it():
    torch.manual_seed(0)
    model = liven(_ActBlocks(), 16)
    graph = build_graph(model, torch.randn(1, 3, 16, 16), model_name="act_blocks")
    assert [(b.tail, b.tail_act) for b in graph.branches.values()] == [("a2", "act_a")]
    plan = _without_branches(graph)
    pruned, _ = shrink(model, graph, plan)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert relative_error(pruned.eval()(x), masked_forward(model, graph, plan, x)) < 1e-4
    assert isinstance(pruned.act_a, nn.Identity) and isinstance(pruned.a2, BranchConstant)


def test_only_a_whole_branch_may_be_emptied():
    model, graph, _ = model_and_graph("cifar_resnet56")
    stream = next(g for g in graph.prunable_groups if g.shared)
    with pytest.raises(PlanError, match="only a group that is a whole residual branch"):
        shrink(model, graph, Plan(graph.model_name, graph.fingerprint, {stream.id: []}))


def test_exported_model_drops_the_branch_layers(tmp_path):
    model, graph, size = model_and_graph("cifar_resnet56")
    pruned, _ = shrink(model, graph, _without_branches(graph, every=3))
    x = torch.randn(1, 3, size, size)
    export_onnx(model, x, tmp_path / "dense.onnx")
    export_onnx(pruned, x, tmp_path / "pruned.onnx")
    convs = {k: sum(n.op_type == "Conv" for n in onnx.load(tmp_path / f"{k}.onnx").graph.node)
             for k in ("dense", "pruned")}  # fmt: skip
    assert convs["pruned"] == convs["dense"] - 2 * 9
    with torch.no_grad():
        assert relative_error(torch.from_numpy(run_onnxruntime(tmp_path / "pruned.onnx", x)), pruned.eval()(x)) < 1e-4


def test_saved_model_reloads_and_fine_tunes_with_in_place_additions(tmp_path):
    """torchvision's blocks add the shortcut in place (``out += identity``): the constant must be a full tensor."""
    torch.manual_seed(0)
    model = liven(create_model("resnet18"), 64)
    graph = build_graph(model, torch.randn(1, 3, 64, 64), model_name="resnet18")
    plan = _without_branches(graph, every=2)
    pruned, changes = shrink(model, graph, plan)
    save_pruned(pruned, arch_spec("resnet18", {}, graph.fingerprint, changes), tmp_path)
    back = load_pruned(tmp_path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(back.eval()(x), pruned.eval()(x))
        assert relative_error(pruned(x), masked_forward(model, graph, plan, x)) < 1e-4
    assert sum(isinstance(m, EmptyChannels) for m in back.modules()) == len(plan.keep)
    back.train()
    back(x).sum().backward()
    constants = [m for m in back.modules() if isinstance(m, BranchConstant)]
    assert constants and all(c.value.grad is not None for c in constants)


@pytest.fixture(scope="module")
def resnet20():
    torch.manual_seed(0)
    model = liven(create_model("cifar_resnet20"), 32)
    graph = build_graph(model, torch.randn(1, 3, 32, 32), model_name="cifar_resnet20")
    return model, graph, collect_layers(model, (1, 3, 32, 32))


def test_planner_removes_branches_only_when_allowed(resnet20):
    model, graph, layers = resnet20
    budget = Budget.parse("macs", "0.3x")
    results = {allowed: plan_pruning(model, graph, layers, budget, "macs",
                                     constraints=PlanConstraints(remove_branches=allowed))
               for allowed in (False, True)}  # fmt: skip
    emptied = {k: {w.group for w in r.widths if w.kept == 0} for k, r in results.items()}
    assert emptied[False] == set()
    assert emptied[True] and emptied[True] <= set(graph.branches)
    for result in results.values():
        assert result.pruned["macs"] <= budget.resolve(result.dense["macs"]) + 1e-9
        pruned, _ = shrink(model, graph, result.plan)
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert relative_error(pruned.eval()(x), masked_forward(model, graph, result.plan, x)) < 1e-4


def test_the_reachable_minimum_falls_when_branches_may_go(resnet20):
    model, graph, layers = resnet20
    budget = Budget.parse("macs", "0.05x")
    with pytest.raises(ValueError, match="reachable minimum"):
        plan_pruning(model, graph, layers, budget, "macs")
    result = plan_pruning(model, graph, layers, budget, "macs", constraints=PlanConstraints(remove_branches=True))
    assert len([w for w in result.widths if w.kept == 0]) >= 5


def test_a_model_with_removed_branches_prunes_again(tmp_path):
    """Step 2 of a schedule: the graph reads the constants, and cutting the stream slices them too."""
    from edgeprune.prune import prune_model

    model, graph, size = model_and_graph("cifar_resnet56")
    first, spec = prune_model(model, graph, _without_branches(graph, every=2))
    first.eval()
    again = build_graph(first, torch.randn(1, 3, size, size), model_name=graph.model_name)
    assert len(again.branches) == len(graph.branches) - len(_without_branches(graph, every=2).keep)
    streams = [g for g in again.prunable_groups if g.shared]
    with_constant = next(g for g in streams if any(p.endswith(".value") for p in g.modules()))
    plan = Plan(graph.model_name, again.fingerprint,
                {with_constant.id: list(range(with_constant.size // 2)), next(iter(again.branches)): []})  # fmt: skip
    second, spec = prune_model(first, again, plan, spec["changes"])
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert relative_error(second.eval()(x), masked_forward(first, again, plan, x)) < 1e-4
    save_pruned(second, spec, tmp_path)
    with torch.no_grad():
        assert torch.equal(load_pruned(tmp_path).eval()(x), second(x))


def _synthetic_profile(layers):
    from test_planner import staircase_profile

    profile = staircase_profile(layers)
    profile.calibration["cifar_resnet20"] = Calibration(1.2, -0.1, [{"layers": [[x.geometry.key, x.cin, x.cout]
                                                                                 for x in layers]}])  # fmt: skip
    return profile


def test_a_removed_layer_leaves_its_unsaved_share(resnet20):
    _, graph, layers = resnet20
    profile = _synthetic_profile(layers)
    tail = next(x for x in layers if x.path == graph.branches[next(iter(graph.branches))].tail)
    model = LatencyModel(profile, "cifar_resnet20")
    full = model.layer(tail, tail.cin, tail.cout)
    # the table's 16-channel block costs 0.01 ms, plus its share of the -0.1 ms offset (per layer, over scale 1.2)
    assert full == pytest.approx(0.01 - 0.1 / len(layers) / 1.2)
    assert model.layer(tail, 0, tail.cout) == 0.0  # no scale: all of it saved
    scaled = replace(profile, removal_scale={"cifar_resnet20": {tail.geometry.key: 0.25}})
    assert LatencyModel(scaled, "cifar_resnet20").layer(tail, 0, tail.cout) == pytest.approx(0.75 * full)
    assert LatencyModel(scaled, "cifar_resnet56").layer(tail, 0, tail.cout) == 0.0  # another model's scales: none
    again = type(profile).from_dict(scaled.to_dict())
    assert again.removal_scale == scaled.removal_scale


def test_removal_fit_recovers_the_savings_it_was_shown(resnet20, monkeypatch):
    """Timings made up from known per-geometry scales: the fit must find scales that reproduce them."""
    from edgeprune.latency import innet, removal

    model, graph, layers = resnet20
    profile = _synthetic_profile(layers)
    truth = {x.geometry.key: s for x, s in zip(layers, [0.4, 0.9, 1.6] * len(layers))}

    def fake_time(target, models, shape, rounds):
        with_truth = replace(profile, removal_scale={"cifar_resnet20": truth})
        out = {}
        for label, m in models.items():
            paths = {x.path for x in collect_layers(m, shape)}
            gone = {x.path for x in layers} - paths
            out[label] = removal.predicted_ratio(with_truth, "cifar_resnet20", layers, gone)
        return out

    monkeypatch.setattr(innet, "_time", fake_time)
    monkeypatch.setattr(removal, "build_model", lambda name, target: model)
    fitted, rows = removal.fit_removal(profile, load_target("cpu-ort"), "cifar_resnet20")
    assert profile.removal_scale == {}  # the fit returns a new profile and leaves its input as it was
    assert set(fitted.removal_scale["cifar_resnet20"]) <= set(truth)
    assert rows and all(r["predicted_ratio_before"] != pytest.approx(r["measured_ratio"], abs=1e-3) for r in rows)
    for r in rows:  # the ridge pulls scales towards 1, so close, not exact
        error_before = abs(r["predicted_ratio_before"] - r["measured_ratio"])
        assert abs(r["predicted_ratio_after"] - r["measured_ratio"]) < 0.5 * error_before, r


def test_validate_predicts_a_pruned_model_as_the_planner_did(resnet20):
    """The dense model's layers say which were removed: the prediction matches the plan's, scales included."""
    from edgeprune.prune import prune_model
    from edgeprune.validation import ModelRef, predict_pair

    model, graph, layers = resnet20
    scales = {"cifar_resnet20": {x.geometry.key: 0.6 for x in layers}}
    profile = replace(_synthetic_profile(layers), removal_scale=scales)
    result = plan_pruning(model, graph, layers, Budget.parse("macs", "0.3x"), "macs", profile,
                          constraints=PlanConstraints(remove_branches=True))  # fmt: skip
    assert any(w.kept == 0 for w in result.widths)
    pruned = prune_model(model, graph, result.plan)[0]
    dense_ms, predicted = predict_pair(profile, ModelRef("original", "cifar_resnet20", model, (3, 32, 32)),
                                       ModelRef("pruned", "cifar_resnet20", pruned, (3, 32, 32)), (1, 3, 32, 32))
    assert dense_ms == result.dense["latency"]
    assert predicted == pytest.approx(result.pruned["latency"], rel=1e-9)
    # from the pruned model's own layers alone, the removed ones would count as wholly saved; against the dense
    # layers each leaves 1 - 0.6 of its dense term in the layer sum
    lm, own = LatencyModel(profile, "cifar_resnet20"), collect_layers(pruned, (1, 3, 32, 32))
    alone, against = lm.predict(own).per_layer, lm.predict_pruned(layers, own).per_layer
    left = sum(0.4 * lm.layer(x, x.cin, x.cout) for x in layers if x.path not in {y.path for y in own})
    assert left > 0 and sum(against.values()) - sum(alone.values()) == pytest.approx(left, rel=1e-9)


def test_prune_command_removes_branches(tmp_path):
    from click.testing import CliRunner

    from edgeprune.cli import main

    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["prune", "cifar_resnet20", "--target", "cpu-ort", "--macs", "0.3x",
                                  "--remove-branches", "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "→ 0 | 0 %" in (out / "plan.md").read_text()
    model = load_pruned(out / "model")
    assert any(isinstance(m, BranchConstant) for m in model.modules())


def test_profile_fit_removal_command_writes_the_fit(tmp_path, monkeypatch):
    import json
    import shutil

    from click.testing import CliRunner

    from edgeprune.cli import main
    from edgeprune.latency import removal

    path = tmp_path / "profile.json"
    shutil.copy(shipped_dir("profiles") / "cpu-ort--amd-epyc-2c.json", path)

    def fake_fit(profile, target, name, **kwargs):
        fitted = replace(profile, removal_scale={**profile.removal_scale, name: {"conv|b1|8x8|k3|s1|gw0|fp32": 0.5}})
        return removal.Fitted(fitted, [{"variant": "kind0", "measured_ratio": 0.9, "predicted_ratio_before": 0.8,
                                        "predicted_ratio_after": 0.9, "macs_removed": 0.15}])  # fmt: skip

    monkeypatch.setattr(removal, "fit_removal", fake_fit)
    before = json.loads(path.read_text())
    r = CliRunner().invoke(main, ["profile", "fit", "cpu-ort", "removal", "--model", "cifar_resnet56",
                                  "--profile", str(path), "--out", str(tmp_path / "fitted.json")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "15.0 % of the MACs removed" in r.output
    written = json.loads((tmp_path / "fitted.json").read_text())
    fitted = {"conv|b1|8x8|k3|s1|gw0|fp32": 0.5}
    assert written["removal_scale"] == {**before["removal_scale"], "cifar_resnet56": fitted}
    assert json.loads(path.read_text()) == before  # --out given: the profile read stays as it was
