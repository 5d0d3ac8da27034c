"""Plan shapes: the uniform plan under a budget, and choosing among shapes by measuring them on the target."""

from __future__ import annotations

import json
import statistics
from unittest import mock

import pytest
import torch
from click.testing import CliRunner

import edgeprune.latency.profiler as profiler
from edgeprune.cli import main
from edgeprune.graph import build_graph
from edgeprune.latency import collect_layers
from edgeprune.latency.layers import on_blocking
from edgeprune.models import create_model
from edgeprune.plan.budget import Budget, BudgetError, PlanConstraints
from edgeprune.plan.candidates import (
    EXTRA_PASSES,
    PREDICTED_MARGIN,
    SHAPES,
    choose_fastest,
    choose_predicted,
    plan_shapes,
)
from edgeprune.plan.planner import importance_for
from edgeprune.plan.run import PruneSettings, prune_run
from edgeprune.plan.uniform import plan_uniform
from edgeprune.prune import load_pruned, prune_model
from edgeprune.prune.oracle import check_shrunk
from edgeprune.targets import load_target
from edgeprune.validation import count_macs

SHAPE = (1, 3, 32, 32)


@pytest.fixture(scope="module")
def resnet20():
    torch.manual_seed(0)
    model = create_model("cifar_resnet20").eval()
    graph = build_graph(model, torch.randn(*SHAPE), model_name="cifar_resnet20")
    return model, graph, collect_layers(model, SHAPE)


@pytest.mark.parametrize("fraction", [0.7, 0.5])
def test_uniform_plan_cuts_every_inner_group_alike_on_the_blocking_and_meets_the_budget(resnet20, fraction):
    model, graph, layers = resnet20
    c = PlanConstraints(align=16)
    result = plan_uniform(model, graph, layers, Budget.parse("macs", f"{fraction}x"), constraints=c)
    assert result.pruned["macs"] <= fraction * result.dense["macs"] + 1e-9
    assert result.pruned["macs"] >= (fraction - 0.1) * result.dense["macs"]  # the least cut, not the deepest
    shared = {g.id for g in graph.prunable_groups if g.shared}
    cut = [w for w in result.widths if w.kept < w.size]
    assert cut and all(on_blocking(w.kept, 16) for w in cut)
    assert not any(w.group in shared for w in cut)  # residual streams whole, as the planner keeps them
    inner = [w.kept / w.size for w in result.widths if w.group not in shared]
    # as uniform as the widths allow (16 channels: 16, 8, 4): every group within one width step of the others
    assert max(inner) <= 2 * min(inner) + 1e-9
    # the shrunk model is the masked one and keeps what the plan says it keeps
    pruned, _ = prune_model(model, graph, result.plan)
    assert check_shrunk(model, graph, result.plan, pruned, SHAPE[1:]) < 1e-4
    x = torch.randn(*SHAPE)
    assert count_macs(pruned, x)[0] <= fraction * count_macs(model, x)[0] * 1.01


def test_uniform_plan_keeps_the_most_important_units_of_each_group(resnet20):
    model, graph, layers = resnet20
    scores = importance_for(model, graph)
    result = plan_uniform(model, graph, layers, Budget.parse("macs", "0.6x"), constraints=PlanConstraints(align=16))
    for gid, keep in result.plan.keep.items():
        dropped = [i for i in range(len(scores[gid])) if i not in keep]
        assert min(scores[gid][keep]) >= max(scores[gid][dropped])


def test_uniform_plan_below_its_reach_names_the_floor(resnet20):
    model, graph, layers = resnet20
    with pytest.raises(BudgetError, match=r"below the reachable minimum of .* \(0\.\d+x\) with min_channels"):
        plan_uniform(model, graph, layers, Budget.parse("macs", "0.1x"), constraints=PlanConstraints(align=16))


def test_uniform_plans_last_cut_meets_the_budget_removing_least():
    # taken in uniform order, SqueezeNet's last cut went well past the budget
    torch.manual_seed(0)
    model, shape = create_model("squeezenet1_1").eval(), (1, 3, 224, 224)
    graph = build_graph(model, torch.randn(*shape), model_name="squeezenet1_1")
    result = plan_uniform(model, graph, collect_layers(model, shape), Budget.parse("macs", "0.5x"),
                          constraints=PlanConstraints(align=16))  # fmt: skip
    assert 0.49 * result.dense["macs"] <= result.pruned["macs"] <= 0.5 * result.dense["macs"]


def ms_from_params(target, models, shape, passes=1, desc="", keep_fp32=()):
    """measure_variants stand-in: each model's ms is its parameter count (the fewest parameters run fastest)."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    dense = count(models[0])
    return [[(1.0, count(m) / dense) for m in models[1:]] for _ in range(passes)]


def test_compare_plans_keeps_the_shape_that_measured_fastest_and_records_every_shape(tmp_path, monkeypatch):
    timed: list[int] = []

    def fake(target, models, shape, passes=1, desc="", keep_fp32=()):
        timed.append(len(models) - 1)
        return ms_from_params(target, models, shape, passes, desc)

    monkeypatch.setattr(profiler, "measure_variants", fake)
    settings = PruneSettings(Budget.parse("macs", "0.6x"), compare_plans=True)
    result = prune_run("cifar_resnet20", "cpu-ort", settings, tmp_path / "p")
    saved = json.loads((tmp_path / "p" / "plan_result.json").read_text())["compared"]
    rows = {r["shape"]: r for r in saved["plans"]}
    assert set(rows) | set(saved["skipped"]) == set(SHAPES)
    # identical plans are timed once; the rest each once per pass
    assert timed == [len([r for r in rows.values() if r["same_as"] is None])]
    assert saved["chosen"] == min(rows, key=lambda k: (rows[k]["measured"], list(rows).index(k)))
    assert result.ranked_by == saved["chosen"]
    # the model written is the chosen plan's: its measured ratio (here its parameter share) matches
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    share = count(load_pruned(tmp_path / "p" / "model")) / count(create_model("cifar_resnet20"))
    assert share == pytest.approx(rows[saved["chosen"]]["measured"])
    assert all(r["macs"] <= 0.6 + 1e-9 for r in rows.values())
    assert f"kept: {saved['chosen']}" in (tmp_path / "p" / "plan.md").read_text()


@pytest.mark.parametrize("slower", [False, True])
def test_compare_plans_says_when_no_shape_ran_faster_than_the_unpruned_model(tmp_path, monkeypatch, slower):
    """A MACs budget can be met by shapes that all run slower than the unpruned model (seen on an int8 target): the
    plan is still written, and what it says and records makes that plain."""

    def fake(target, models, shape, passes=1, desc="", keep_fp32=()):
        times = ms_from_params(target, models, shape, passes, desc)  # the fewest parameters run fastest
        return [[(d, 1.05 + 0.01 * ms if slower else ms) for d, ms in row] for row in times]

    monkeypatch.setattr(profiler, "measure_variants", fake)
    r = CliRunner().invoke(main, ["prune", "cifar_resnet20", "--target", "cpu-ort", "--macs", "0.6x",
                                  "--compare-plans", "--out", str(tmp_path / "p")])  # fmt: skip
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "p" / "plan_result.json").read_text())["compared"]
    assert saved["faster_than_unpruned"] is (not slower)
    said = "no plan shape ran faster than the unpruned model"
    assert (said in r.output) is slower and (said in (tmp_path / "p" / "plan.md").read_text()) is slower
    assert (tmp_path / "p" / "model").is_dir()


@pytest.mark.parametrize(("passes", "again", "kept"), [
    ([(0.60, 0.55), (0.60, 0.58), (0.60, 0.59)], None, "other"),  # faster in every pass: switch at once
    ([(0.60, 0.55), (0.60, 0.58), (0.60, 0.62)], [(0.60, 0.57)] * EXTRA_PASSES, "other"),  # lost once, then won
    ([(0.60, 0.55), (0.60, 0.58), (0.60, 0.62)], [(0.60, 0.63)] * EXTRA_PASSES, "first"),  # lost again: noise
    ([(0.60, 0.60)] * 3, None, "first"),  # a tie keeps the planner's own, without timing more
])  # fmt: skip
def test_compare_plans_switches_from_the_first_shape_only_on_a_win_by_the_paired_interval(monkeypatch, passes, again,
                                                                                          kept):
    """On LCNet-1.0 a uniform plan 5 % faster than the latency-ranked one lost one of three passes in one run and
    none in the next: a shape that won most passes is timed again beside the first before it is kept or let go."""
    calls = []

    def fake(target, models, shape, passes_=1, desc="", keep_fp32=()):
        calls.append((len(models) - 1, passes_))
        return [[(1.0, first), (1.0, other)] for first, other in (passes if len(calls) == 1 else again)]

    monkeypatch.setattr(profiler, "measure_variants", fake)
    model = create_model("cifar_resnet20")
    plans = {"first": mock.Mock(plan=mock.Mock(keep={0: [0]}), pruned={"macs": 1}, dense={"macs": 2}),
             "other": mock.Mock(plan=mock.Mock(keep={0: [1]}), pruned={"macs": 1}, dense={"macs": 2})}
    chosen, rows = choose_fastest(plans, load_target("cpu-ort"), model, (1, 3, 32, 32), lambda r: model)
    assert chosen == kept
    assert calls == [(2, 3)] + ([(2, EXTRA_PASSES)] if again else [])
    assert [r.measured for r in rows] == [pytest.approx(statistics.median(p[i] for p in passes)) for i in (0, 1)]
    assert [r.shape for r in rows] == ["first", "other"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--macs", "0.5x", "--rank-by", "macs"], "--rank-by cannot be used with --compare-plans"),
    (["--latency", "0.7x", "--measured-rounds", "2"], "--measured-rounds cannot be used with --compare-plans"),
    (["--macs", "0.5x", "--no-compare-plans"], "--no-compare-plans cannot be used with --compare-plans"),
    (["--macs", "0.5x", "--target", "cuda-ort"], "cannot run here"),
])  # fmt: skip
def test_compare_plans_bad_input(tmp_path, extra, message):
    args = ["prune", "cifar_resnet20", "--compare-plans", "--out", str(tmp_path / "p")] + extra
    if "--target" not in extra:
        args += ["--target", "cpu-ort"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0 and message in r.output
    assert not (tmp_path / "p").exists()


def test_compare_plans_times_real_plans_on_the_cpu(tmp_path):
    r = CliRunner().invoke(main, ["prune", "cifar_resnet20", "--target", "cpu-ort", "--macs", "0.6x",
                                  "--compare-plans", "--out", str(tmp_path / "p")])  # fmt: skip
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "p" / "plan_result.json").read_text())["compared"]
    assert saved["chosen"] in SHAPES
    assert all(p["measured"] > 0 and p["low"] <= p["measured"] <= p["high"] for p in saved["plans"])


def test_compare_plans_on_a_model_the_profile_lacks_times_the_shapes_it_can_plan(tmp_path, monkeypatch):
    monkeypatch.setattr(profiler, "measure_variants", ms_from_params)
    settings = PruneSettings(Budget.parse("macs", "0.7x"), compare_plans=True)
    prune_run("cifar_vgg16", "cpu-ort", settings, tmp_path / "p")  # two of its geometries are not profiled
    saved = json.loads((tmp_path / "p" / "plan_result.json").read_text())["compared"]
    assert {r["shape"] for r in saved["plans"]} == {"macs", "uniform"}
    assert "no table for 2 of the model's layer geometries" in saved["skipped"]["latency"]
    assert all(r["predicted"] is None for r in saved["plans"])


def test_a_macs_budget_by_default_keeps_the_shape_the_profile_prices_lowest_without_timing(tmp_path, monkeypatch):
    def no_timing(*args, **kwargs):
        raise AssertionError("the default plan times nothing")

    from edgeprune.latency.profile import Profile

    monkeypatch.setattr(profiler, "measure_variants", no_timing)
    # a profile measured elsewhere (the shipped one, unless this is the machine it was measured on)
    monkeypatch.setattr(Profile, "device_mismatch", lambda self: "cpu: elsewhere")
    result = prune_run("cifar_resnet20", "cpu-ort", PruneSettings(Budget.parse("macs", "0.6x")), tmp_path / "p")
    saved = json.loads((tmp_path / "p" / "plan_result.json").read_text())["compared"]
    rows = {r["shape"]: r for r in saved["plans"]}
    assert saved["by"] == "predicted" and set(rows) == set(SHAPES)
    assert all(r["macs"] <= 0.6 + 1e-9 and 0.2 < r["predicted"] < 1.0 for r in rows.values())
    lowest = min(rows, key=lambda k: rows[k]["predicted"])
    switch = rows[lowest]["predicted"] < (1 - PREDICTED_MARGIN) * rows["latency"]["predicted"]
    assert saved["chosen"] == (lowest if switch else "latency") == result.ranked_by
    assert result.pruned["latency"] / result.dense["latency"] == pytest.approx(rows[saved["chosen"]]["predicted"])
    assert f"priced by the profile (kept: {saved['chosen']})" in (tmp_path / "p" / "plan.md").read_text()
    # asked for by name, the latency-ranked plan is the planner's own, with no shapes beside it
    explicit = prune_run("cifar_resnet20", "cpu-ort", PruneSettings(Budget.parse("macs", "0.6x"), ranked_by="latency"),
                         tmp_path / "q")  # fmt: skip
    assert explicit.ranked_by == "latency" and explicit.compared is None


@pytest.mark.parametrize(("first", "other", "kept"), [
    (1.00, 0.96, "other"),  # predicted 4 % faster: switch
    (1.00, 0.98, "other"),  # 2 %: the planner's own plan is the one its prices flatter, so no margin for it
    (1.00, 1.00, "first"),  # a tie keeps the planner's own
    (None, 0.90, "first"),  # the first shape unpriced: nothing to compare it with
])  # fmt: skip
def test_the_default_switches_to_a_shape_predicted_faster_than_the_planners_own(first, other, kept):
    def shape(ratio):
        return mock.Mock(pruned={"macs": 1, **({"latency": ratio} if ratio else {})},
                         dense={"macs": 2, **({"latency": 1.0} if ratio else {})})  # fmt: skip

    chosen, rows = choose_predicted({"first": shape(first), "other": shape(other)})
    assert chosen == kept
    assert [(r["shape"], r["predicted"]) for r in rows] == [("first", first), ("other", other)]


@pytest.mark.parametrize(("shapes", "kept"), [(("macs", "uniform"), "uniform"), (("macs",), "macs")])
def test_with_no_shape_priced_the_default_keeps_the_uniform_one_where_it_has_a_plan(shapes, kept):
    unpriced = mock.Mock(pruned={"macs": 1}, dense={"macs": 2})
    chosen, rows = choose_predicted({s: unpriced for s in shapes})
    assert chosen == kept and all(r["predicted"] is None for r in rows)


@pytest.mark.parametrize("change", [{"solver": "knapsack"}, {"constraints": PlanConstraints(remove_branches=True)}])
def test_the_default_weighs_no_other_shape_for_the_knapsack_or_branch_removal(tmp_path, change):
    # the knapsack ignores the ranking, and the uniform shape removes no branch: the planner's plan stays
    settings = PruneSettings(Budget.parse("macs", "0.6x"), **change)
    result = prune_run("cifar_resnet20", "cpu-ort", settings, tmp_path / "p")
    assert result.compared is None
    assert "compared" not in json.loads((tmp_path / "p" / "plan_result.json").read_text())


def timings_on(monkeypatch, measured_here: bool) -> list[int]:
    """Timings faked by parameter share (:func:`ms_from_params`), the profile measured here or elsewhere; the
    list fills with one entry per timing call."""
    from edgeprune.latency.profile import Profile

    calls: list[int] = []

    def fake(target, models, shape, passes=1, desc="", keep_fp32=()):
        calls.append(len(models))
        return ms_from_params(target, models, shape, passes, desc)

    monkeypatch.setattr(profiler, "measure_variants", fake)
    monkeypatch.setattr(Profile, "device_mismatch", lambda self: "" if measured_here else "cpu: elsewhere")
    return calls


@pytest.mark.parametrize(("budget", "option", "measured_here", "timed"), [
    ("macs", {}, True, True),  # the user is on the device the profile describes: the shapes are timed
    ("macs", {}, False, False),  # a profile from elsewhere prices them
    ("macs", {"compare_plans": False}, True, False),  # --no-compare-plans: priced even here
    ("latency", {}, True, True),  # a latency budget is met as timed
    ("latency", {}, False, False),  # by prediction
    ("latency", {"measured_rounds": 0}, True, False),  # --measured-rounds 0: by prediction even here
])  # fmt: skip
def test_plans_are_timed_by_default_on_the_device_their_profile_was_measured_on(
        tmp_path, monkeypatch, budget, option, measured_here, timed):  # fmt: skip
    from edgeprune.plan.run import AUTO_MEASURED_ROUNDS

    calls = timings_on(monkeypatch, measured_here)
    result = prune_run("cifar_resnet20", "cpu-ort", PruneSettings(Budget.parse(budget, "0.7x"), **option),
                       tmp_path / "p")  # fmt: skip
    saved = json.loads((tmp_path / "p" / "plan_result.json").read_text())
    assert bool(calls) == timed
    if budget == "macs":  # the shapes, one timing call for all of them
        assert saved["compared"]["by"] == ("measured" if timed else "predicted")
        assert result.ranked_by == saved["compared"]["chosen"]
    else:  # the rounds, one timing call each
        assert ("measured" in saved) == timed
        if timed:
            assert 1 <= len(saved["measured"]["rounds"]) == len(calls) <= AUTO_MEASURED_ROUNDS
            assert result.measured["measured"] <= 0.7 * 1.02  # the budget holds as timed (here: parameter share)


def test_no_compare_plans_on_the_command_line_prices_the_shapes_on_the_profiles_own_device(tmp_path, monkeypatch):
    from edgeprune.latency.profile import Profile

    def no_timing(*args, **kwargs):
        raise AssertionError("--no-compare-plans times nothing")

    monkeypatch.setattr(profiler, "measure_variants", no_timing)
    monkeypatch.setattr(Profile, "device_mismatch", lambda self: "")
    r = CliRunner().invoke(main, ["prune", "cifar_resnet20", "--target", "cpu-ort", "--macs", "0.6x",
                                  "--no-compare-plans", "--out", str(tmp_path / "p")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "p" / "plan_result.json").read_text())["compared"]["by"] == "predicted"


def test_a_latency_budget_timed_by_default_that_no_plan_meets_says_how_to_plan_by_prediction(tmp_path, monkeypatch):
    from edgeprune.latency.profile import Profile

    def nothing_gets_faster(target, models, shape, passes=1, desc="", keep_fp32=()):
        return [[(1.0, 1.0) for _ in models[1:]] for _ in range(passes)]

    monkeypatch.setattr(profiler, "measure_variants", nothing_gets_faster)
    monkeypatch.setattr(Profile, "device_mismatch", lambda self: "")
    with pytest.raises(BudgetError, match="--measured-rounds 0 plans by prediction alone"):
        prune_run("cifar_resnet20", "cpu-ort", PruneSettings(Budget.parse("latency", "0.8x")), tmp_path / "p")
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())  # nothing half-written


def test_shapes_refused_for_one_reason_are_named_together_once():
    reasons = {"latency": "no table", "macs": "below the reachable minimum", "uniform": "below the reachable minimum"}

    def refuse(shape):
        raise BudgetError(reasons[shape])

    with pytest.raises(BudgetError) as exc:
        plan_shapes(refuse)
    expected = "no plan shape reaches the budget: latency: no table; macs, uniform: below the reachable minimum"
    assert str(exc.value) == expected
