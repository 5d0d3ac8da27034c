"""Planning to a measured latency budget: the search over predicted budgets, and its wiring into `prune`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import edgeprune.latency.profiler as profiler
from edgeprune.cli import main
from edgeprune.models import create_model
from edgeprune.plan.measured import MeasuredRound, next_planned, plan_to_measured
from edgeprune.plan.planner import Budget, BudgetError
from edgeprune.plan.run import PruneSettings, prune_run
from edgeprune.prune import load_pruned


class FakePlan:
    """What plan_to_measured reads from a PlanResult: the predicted totals."""

    def __init__(self, planned: float) -> None:
        self.planned = planned
        self.dense = {"latency": 2.0}
        self.pruned = {"latency": 2.0 * planned}


def device(share: float, dense_ms: float = 4.0):
    """A target where ``share`` of every predicted saving shows up as measured saving."""

    def measure(result: FakePlan) -> tuple[float, float]:
        return dense_ms, dense_ms * (1 - share * (1 - result.planned))

    return measure


def search(budget: str, share: float, rounds: int = 4, floor: float = 0.3, dense_ms: float = 4.0):
    b = Budget.parse("latency", budget)
    first = b.value if b.relative else b.value / 2.0
    return plan_to_measured(b, first, floor, FakePlan, device(share, dense_ms), rounds)


def test_overpredicted_savings_are_planned_deeper_until_the_measured_budget_holds():
    result, chosen, rounds = search("0.7x", share=0.6)
    assert rounds[0].planned == pytest.approx(0.7) and rounds[0].measured == pytest.approx(0.82)
    assert len(rounds) == 2  # a fixed share of the saving is found in one step
    assert chosen.measured == pytest.approx(0.7) and result.planned == pytest.approx(0.5)


def test_underpredicted_savings_are_relaxed_to_keep_more_channels():
    result, chosen, rounds = search("0.7x", share=1.5)
    assert rounds[0].measured == pytest.approx(0.55)
    assert chosen.planned > 0.7 and chosen.measured == pytest.approx(0.7, rel=0.02)


def test_a_plan_within_tolerance_ends_the_search_at_once():
    _, chosen, rounds = search("0.7x", share=1.0)
    assert len(rounds) == 1 and chosen.measured == pytest.approx(0.7)


def test_absolute_budget_is_read_against_the_measured_unpruned_model():
    _, chosen, _ = search("3.0ms", share=0.6, dense_ms=4.0)  # 3.0 of 4.0 measured ms: 0.75x
    assert chosen.ms <= 3.0 * 1.02 and chosen.measured == pytest.approx(0.75, rel=0.02)


def test_budget_below_what_the_device_can_reach_names_the_measured_floor():
    with pytest.raises(BudgetError, match=r"not reachable as measured.*predicted 0.300x\) measured 0.860x"):
        search("0.5x", share=0.2, floor=0.3)


def test_search_that_runs_out_of_rounds_says_what_it_measured():
    with pytest.raises(BudgetError, match=r"in 1 rounds \(measured 0.820x\)"):
        search("0.7x", share=0.6, rounds=1)


def test_noisy_measurements_out_of_order_are_split_not_extrapolated():
    rounds = [MeasuredRound(0.6, 0.6, 0.72, 1, 0.72), MeasuredRound(0.5, 0.5, 0.68, 1, 0.68)]
    assert next_planned(rounds, 0.70, 0.3) == pytest.approx(0.55)


def test_measured_rounds_need_a_latency_budget():
    with pytest.raises(BudgetError, match="latency budget"):
        plan_to_measured(Budget.parse("macs", "0.5x"), 0.5, 0.3, FakePlan, device(1.0), 3)


def params_share(share: float):
    """measure_variants stand-in: a plan's measured ratio from its parameter count (no timing in tests)."""

    def fake(target, models, shape, passes=1, desc="", keep_fp32=()):
        dense, pruned = (sum(p.numel() for p in m.parameters()) for m in models)
        return [[(2.0, 2.0 * (1 - share * (1 - pruned / dense)))] for _ in range(passes)]

    return fake


def test_prune_writes_the_plan_that_measured_within_the_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(profiler, "measure_variants", params_share(0.8))
    settings = PruneSettings(Budget.parse("latency", "0.75x"), measured_rounds=4)
    result = prune_run("cifar_resnet20", "cpu-ort", settings, tmp_path / "p")
    saved = json.loads((tmp_path / "p" / "plan_result.json").read_text())
    measured = saved["measured"]
    assert saved["budget"] == "latency 0.75x" and measured["measured"] <= 0.75 * 1.02
    assert 1 <= len(measured["rounds"]) <= 4
    # the plan written is the least pruned one that measured within the budget (and its tolerance)
    within = [r for r in measured["rounds"] if r["measured"] <= 0.75 * 1.02]
    assert measured == {**max(within, key=lambda r: r["measured"]), "rounds": measured["rounds"]}
    # the model written is the chosen plan's: its parameter share is what the stand-in measured
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    share = count(load_pruned(tmp_path / "p" / "model")) / count(create_model("cifar_resnet20"))
    assert share == pytest.approx(1 - (1 - measured["measured"]) / 0.8, rel=1e-6)
    assert "measured on the target" in (tmp_path / "p" / "plan.md").read_text()
    assert result.measured == measured


@pytest.mark.parametrize(("extra", "message"), [
    (["--macs", "0.5x"], "without a --latency budget"),
    (["--latency", "0.7x", "--target", "cuda-ort"], "cannot run here"),
])  # fmt: skip
def test_prune_cli_measured_rounds_bad_input(tmp_path, extra, message):
    args = ["prune", "cifar_resnet20", "--measured-rounds", "3", "--out", str(tmp_path / "p")] + extra
    if "--target" not in extra:
        args += ["--target", "cpu-ort"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0 and message in r.output
    assert not (tmp_path / "p").exists()


def test_a_schedule_measures_each_step_against_the_unpruned_model(tmp_path, monkeypatch):
    monkeypatch.setattr(profiler, "measure_variants", params_share(0.8))
    settings = PruneSettings(Budget.parse("latency", "0.7x"), measured_rounds=4)
    first = prune_run("cifar_resnet20", "cpu-ort", settings, tmp_path / "s1", schedule=(1, 2, None))
    assert str(first.budget) == "latency 0.85x"  # step 1 of 2 is timed to half the way, not left to the prediction
    assert first.measured["measured"] <= 0.85 * 1.02
    origin = json.loads((tmp_path / "s1" / "plan_result.json").read_text())["origin"]
    last = prune_run(str(tmp_path / "s1"), "cpu-ort", settings, tmp_path / "s2", schedule=(2, 2, origin))
    assert last.measured["measured"] <= 0.7 * 1.02
    # measured against the unpruned ResNet-20, not against the step-1 model it was planned from
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    share = count(load_pruned(tmp_path / "s2" / "model")) / count(create_model("cifar_resnet20"))
    assert share == pytest.approx(1 - (1 - last.measured["measured"]) / 0.8, rel=1e-6)
    assert last.measured["predicted"] == pytest.approx(last.pruned["latency"] / origin)


def test_compress_gates_a_measured_plan_against_its_measurement(tmp_path, monkeypatch):
    from edgeprune.compress import CompressConfig, compress, format_summary
    from edgeprune.train.trainer import TrainConfig

    monkeypatch.setattr(profiler, "measure_variants", params_share(0.8))
    none = TrainConfig(epochs=0)
    settings = PruneSettings(Budget.parse("latency", "0.8x"), measured_rounds=3)
    cfg = CompressConfig("cifar_resnet20", "cpu-ort", settings, data="synthetic", train=none, finetune=none)
    summary = compress(cfg, tmp_path / "run", progress=False)
    assert "measured while planning" in summary["gate"]["reason"]
    assert "when timed while planning" in format_summary(summary)
    assert summary["warnings"] == json.loads((tmp_path / "run" / "validate" / "report.json").read_text())["warnings"]
    summary["warnings"] = ["the pruned model runs slower than the original on cpu-ort (0.90x)"]
    assert "\n  WARNING: the pruned model runs slower than the original on cpu-ort (0.90x)\n  gate:" in \
        format_summary(summary)
    assert json.loads((tmp_path / "run" / "compress.json").read_text())["prune"]["measured_rounds"] == 3
    elsewhere = CompressConfig("cifar_resnet20", "cuda-ort", settings, data="synthetic", train=none, finetune=none)
    with pytest.raises(BudgetError, match="cannot run here"):
        compress(elsewhere, tmp_path / "other", progress=False)
    assert not (tmp_path / "other").exists()  # refused before the run folder was written
    plain = CompressConfig("cifar_resnet20", "cpu-ort", PruneSettings(Budget.parse("latency", "0.8x")))
    assert "measured_rounds" not in plain.to_dict()["prune"]  # runs saved before the option resume as they were
