"""The calibration's form: the terms that predict left-out end-to-end runs best, and how a prediction uses them."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import FAST
from test_latency_model import two_layer_profile

from edgeprune.latency.calibration import (
    activations_mb,
    dense_reference,
    fit_calibration,
    fit_line,
    model_mmacs,
    point_weights,
)
from edgeprune.latency.layers import collect_layers
from edgeprune.latency.model import LatencyModel, activation_mb
from edgeprune.latency.profile import Calibration, ProfileError
from edgeprune.latency.profiler import build_model
from edgeprune.latency.variants import CALIBRATION_SEED, planned_variants


def points(measured, layers_ms, act_mb=None, mmacs=None):
    rows = [{"measured_ms": m, "layers_ms": t, "dense_ms": 1.0} for m, t in zip(measured, layers_ms)]
    rows = rows if act_mb is None else [{**r, "act_mb": a} for r, a in zip(rows, act_mb)]
    return rows if mmacs is None else [{**r, "mmacs": c} for r, c in zip(rows, mmacs)]


def test_a_target_whose_tables_do_not_follow_the_runs_is_calibrated_on_its_activations():
    rng = np.random.default_rng(0)
    act = rng.uniform(0.5, 2.0, 10)
    tables = 1.3 + rng.normal(0, 0.05, 10)  # flat and noisy, as one-layer ExecuTorch programs measured here
    measured = 0.24 * act + 0.06 + rng.normal(0, 0.002, 10)
    cal = fit_calibration(points(measured, tables, act))
    assert not cal.tables and cal.scale == 1.0
    assert cal.ms_per_mb == pytest.approx(0.24, rel=0.05) and cal.offset_ms == pytest.approx(0.06, abs=0.01)
    line = fit_line(points(measured, tables))
    held_out = 0.24 * 0.7 + 0.06  # a plan with 0.7 MB of activations, its tables at the dense sum
    assert abs(cal.ms_per_mb * 0.7 + cal.offset_ms - held_out) < 0.01
    assert abs(line.scale * 1.3 + line.offset_ms - held_out) > 0.1  # the line cannot see it


def test_tables_that_explain_the_runs_keep_the_plain_line():
    rng = np.random.default_rng(1)
    tables = rng.uniform(1.0, 3.0, 10)
    measured = 2.0 * tables + 1.0 + rng.normal(0, 0.001, 10)
    cal = fit_calibration(points(measured, tables, rng.uniform(0.5, 2.0, 10)))  # activations unrelated
    assert cal.tables and cal.ms_per_mb == 0.0
    assert (cal.scale, cal.offset_ms) == pytest.approx((2.0, 1.0), abs=0.01)


def test_both_terms_when_each_explains_part():
    rng = np.random.default_rng(2)
    tables, act = rng.uniform(1.0, 3.0, 10), rng.uniform(0.5, 2.0, 10)
    cal = fit_calibration(points(0.5 * tables + 0.3 * act + 0.2 + rng.normal(0, 0.001, 10), tables, act))
    assert cal.tables and (cal.scale, cal.ms_per_mb, cal.offset_ms) == pytest.approx((0.5, 0.3, 0.2), abs=0.02)


def test_a_network_that_speeds_up_with_its_macs_more_than_its_tables_gets_a_macs_term():
    """MobileNet-V2 on OpenVINO and ExecuTorch: its one-layer tables flatten (a micro-model's time is mostly the
    call around it) while the network's time falls with the arithmetic cut."""
    rng = np.random.default_rng(5)
    mmacs = rng.uniform(80.0, 300.0, 12)
    tables = 6.0 + 0.004 * mmacs + rng.normal(0, 0.05, 12)  # flat: they follow the MACs far less than the runs
    measured = 0.2 * tables + 0.01 * mmacs - 0.5 + rng.normal(0, 0.005, 12)
    cal = fit_calibration(points(measured, tables, rng.uniform(0.5, 2.0, 12), mmacs))  # activations unrelated
    assert cal.tables and cal.ms_per_mb == 0.0
    assert (cal.scale, cal.ms_per_mmac) == pytest.approx((0.2, 0.01), rel=0.1)
    line = fit_line(points(measured, tables))
    held_out = 0.2 * 7.0 + 0.01 * 100.0 - 0.5  # 100 MMACs cut where the tables barely move (6.4 on the trend)
    assert abs(cal.scale * 7.0 + cal.ms_per_mmac * 100.0 + cal.offset_ms - held_out) < 0.05
    assert abs(line.scale * 7.0 + line.offset_ms - held_out) > 0.5  # the line reads MACs off the tables
    without = fit_calibration(points(measured, tables, rng.uniform(0.5, 2.0, 12)))  # points stored before the term
    assert without.ms_per_mmac == 0.0


@pytest.mark.parametrize("macs_error, kept", [(0.95, False), (0.85, True)])
def test_a_form_beyond_the_line_must_leave_points_out_10_percent_better(monkeypatch, macs_error, kept):
    from edgeprune.latency import calibration

    rng = np.random.default_rng(6)
    mmacs, tables = rng.uniform(80.0, 300.0, 12), rng.uniform(5.0, 7.0, 12)
    rows = points(0.2 * tables + 0.01 * mmacs, tables, rng.uniform(0.5, 2.0, 12), mmacs)
    errors = {"tables": 1.0, "tables+macs": macs_error, "tables+mb": 2.0, "mb": 2.0}
    monkeypatch.setattr(calibration, "_loo_error", lambda pts, form: errors[form])
    assert (fit_calibration(rows).ms_per_mmac > 0) is kept


def test_points_of_older_profiles_or_too_few_fit_the_plain_line():
    rng = np.random.default_rng(3)
    act = rng.uniform(0.5, 2.0, 10)
    measured, tables = 0.24 * act + 0.06, 1.3 + rng.normal(0, 0.05, 10)  # the activations would win...
    assert not fit_calibration(points(measured, tables, act)).tables
    old = points(measured, tables)  # ...but points stored before the term carry none
    assert fit_calibration(old) == fit_line(old)
    unpaired = [{k: v for k, v in p.items() if k != "dense_ms"} for p in points(measured, tables, act)]
    assert fit_calibration(unpaired) == fit_line(unpaired)  # timed alone, each with the machine's drift in its ms
    few = points(measured[:4], tables[:4], act[:4])
    assert fit_calibration(few) == fit_line(few)


def test_a_term_the_points_cannot_tell_apart_is_not_fitted():
    rng = np.random.default_rng(4)
    flat = 1.3 + rng.normal(0, 0.05, 10)  # tables that explain nothing: the line fails left-out points
    constant = fit_calibration(points(rng.uniform(0.9, 1.1, 10), flat, np.ones(10)))  # every plan moves 1 MB
    assert constant.tables and constant.ms_per_mb == 0.0  # no slope made up for the constant column
    tables = rng.uniform(1.0, 3.0, 10)
    measured = 2.0 * tables + 1.0 + rng.normal(0, 0.3, 10)
    inverted = fit_calibration(points(measured, tables, 5.0 - tables))  # fewer MB, more ms: no reading
    assert inverted.ms_per_mb == 0.0


def test_the_activation_fields_are_stored_only_when_used_and_read_back():
    from edgeprune.latency.profile import Profile

    profile, _ = two_layer_profile(Calibration(2.0, 1.0))
    assert set(profile.to_dict()["calibration"]["net"]) == {"scale", "offset_ms", "points"}  # as before the term
    macs = replace(profile, calibration={"net": Calibration(2.0, 1.0, [], ms_per_mmac=0.01)})
    assert set(macs.to_dict()["calibration"]["net"]) == {"scale", "offset_ms", "points", "ms_per_mmac"}
    assert Profile.from_dict(macs.to_dict()).calibration["net"] == macs.calibration["net"]
    used = replace(profile, calibration={"net": Calibration(1.0, 0.5, [], 0.3, tables=False)})
    back = Profile.from_dict(used.to_dict())
    assert back.calibration["net"] == used.calibration["net"]
    broken = used.to_dict()
    broken["calibration"]["net"]["tables"] = "false"
    with pytest.raises(ProfileError, match="tables must be true or false"):
        Profile.from_dict(broken)


def test_the_latency_model_applies_the_activation_term_per_layer():
    profile, dense = two_layer_profile()
    a, b = dense
    mb = activations_mb(dense)
    assert mb == activation_mb(a.geometry, 8, 8) + activation_mb(b.geometry, 8, 8)
    only = LatencyModel(replace(profile, calibration={"net": Calibration(1.0, 0.5, [], 2.0, tables=False)}), "net")
    assert only.predict(dense).ms == pytest.approx(2.0 * mb + 0.5)
    narrowed = [replace(a, cout=4), replace(b, cin=4)]
    assert only.predict(narrowed).ms == pytest.approx(2.0 * activations_mb(narrowed) + 0.5)
    both = LatencyModel(replace(profile, calibration={"net": Calibration(2.0, 1.0, [], 3.0)}), "net")
    assert both.predict(dense).ms == pytest.approx(2.0 * (4 + 2) + 3.0 * mb + 1.0)
    # the planner prices a step by the same terms
    step = both.layer(a, 8, 8) - both.layer(a, 8, 4)
    assert 2.0 * step == pytest.approx(2.0 * (4 - 3) + 3.0 * (activation_mb(a.geometry, 8, 8) - activation_mb(
        a.geometry, 8, 4)))  # fmt: skip
    macs = LatencyModel(replace(profile, calibration={"net": Calibration(2.0, 1.0, [], ms_per_mmac=0.5)}), "net")
    assert macs.predict(dense).ms == pytest.approx(2.0 * (4 + 2) + 0.5 * model_mmacs(dense) + 1.0)
    expected = 2.0 * macs.layers_ms(narrowed) + 0.5 * model_mmacs(narrowed) + 1.0
    assert macs.predict(narrowed).ms == pytest.approx(expected)
    assert model_mmacs(narrowed) == pytest.approx(model_mmacs(dense) / 2)  # a's outputs and b's inputs halved


def test_width_corrections_are_refused_where_the_tables_are_left_out():
    from edgeprune.latency.innet import fit_widths
    from edgeprune.targets import load_target

    profile, _ = two_layer_profile(Calibration(1.0, 0.5, [], 2.0, tables=False))
    with pytest.raises(ProfileError, match="leaves the layer tables out"):
        fit_widths(profile, load_target("cpu-ort"), "net")


def test_calibration_also_times_the_plans_the_planner_makes_with_the_profile_fitted_so_far(tiny_profile):
    """The plan a planner picks is the one its prices flatter most (on MobileNet-V3 the line fitted on random and
    uniform plans overrated it by 25 %): the planner's own plans join the points, planned from the line fitted
    on the others, and a budget it cannot reach is left out with a warning."""
    from edgeprune.cli.profile import _planner
    from edgeprune.latency.profiler import recalibrate_profile

    target, _, profile = tiny_profile
    seen = []

    def planner(prof, budgets):
        seen.append((prof, [p["label"] for p in prof.calibration["cifar_resnet20"].points], budgets))
        return _planner(target)(prof, budgets)

    settings = replace(FAST, calibration_planned=(0.5, 0.01), sweep={"tolerance": 0.1, "passes": 1})  # one pass: quick
    with pytest.warns(UserWarning, match="no planned calibration run at 0.01x MACs"):
        fitted = recalibrate_profile(profile, target, ["cifar_resnet20"], settings, planner=planner)
    base = ["uniform-0.0", "uniform-0.5", "random-0", "blocked-0"]
    assert [s[1:] for s in seen] == [(base, ["0.5x"]), (base, ["0.01x"])]
    points = fitted.calibration["cifar_resnet20"].points
    assert [p["label"] for p in points] == base + ["planned-0.5x"]
    # the point's widths are the plan the planner makes with the profile fitted on the other points
    with torch.random.fork_rng():
        torch.manual_seed(CALIBRATION_SEED)
        model = build_model("cifar_resnet20", target)
    shape = (1, 3, 32, 32)
    (_, pruned), = planned_variants(model, "cifar_resnet20", shape, collect_layers(model, shape),
                                    _planner(target)(seen[0][0], ["0.5x"]))  # fmt: skip
    assert points[-1]["layers"] == [[x.geometry.key, x.cin, x.cout] for x in collect_layers(pruned, shape)]
    assert points[-1]["layers"] != points[0]["layers"]
    # timed beside its own dense session and stated on the model's dense reference (no bound on the ratio itself:
    # a tiny model's 0.5x plan ran 1.39x the dense time on a loaded CI machine)
    assert points[-1]["measured_ratio"] > 0 and points[-1]["dense_ms"] > 0
    assert points[-1]["measured_ms"] == pytest.approx(points[-1]["measured_ratio"] * dense_reference(points))
    assert profile.calibration["cifar_resnet20"].points != points  # the fixture's profile is left as it was
    assert fit_calibration(points) == fitted.calibration["cifar_resnet20"]  # fitted on all of them
    assert recalibrate_profile(profile, target, ["cifar_resnet20"], settings).calibration[
        "cifar_resnet20"].points[-1]["label"] == "blocked-0"  # without a planner: as before  # fmt: skip


def test_the_planners_own_plans_weigh_as_much_together_as_the_other_runs():
    """Fitted as one point among many, the planner's plans stayed overrated (MobileNet-V3: +22 % at 0.5x MACs):
    together they weigh as much as the rest, and a fit without them is the plain least-squares line."""
    tables = np.linspace(1.0, 2.0, 10)
    rows = points(tables.copy(), tables)
    for i in (2, 7):  # two planned plans (table sums either side of the mean) run 1 ms over the others' line
        rows[i] = {**rows[i], "label": f"planned-0.{i}x", "measured_ms": tables[i] + 1.0}
    assert list(point_weights(rows)) == [1, 1, 4, 1, 1, 1, 1, 4, 1, 1]
    assert fit_line(rows).offset_ms == pytest.approx(0.5) and fit_line(rows).scale == pytest.approx(1.0)
    assert fit_calibration(rows) == fit_line(rows)
    plain = [{k: v for k, v in r.items() if k != "label"} for r in rows]
    assert list(point_weights(plain)) == [1] * 10 and fit_line(plain).offset_ms == pytest.approx(0.2)
    every = [{**r, "label": "planned-0.5x"} for r in rows]  # all planned: nothing to weigh against
    assert list(point_weights(every)) == [1] * 10


def test_the_form_is_chosen_without_the_planners_own_plans():
    """The planner's plans are the ones it picked with some form; the form is chosen on the other runs, then
    fitted on all (on `cpu-openvino` ResNet-56 letting them vote switched to the MB-alone form and doubled the
    random plans' error)."""
    rng = np.random.default_rng(1)
    tables, act = rng.uniform(1.0, 2.0, 16), rng.uniform(0.5, 2.0, 16)
    rows = points(tables + rng.normal(0, 0.002, 16), tables, act)[:8]  # the tables explain these runs, MB do not
    planned = [{**r, "label": f"planned-{i}", "measured_ms": r["layers_ms"] + 2.0 * r["act_mb"]}
               for i, r in enumerate(points(tables, tables, act)[8:])]  # fmt: skip
    assert fit_calibration(rows + planned).ms_per_mb == 0.0 and fit_calibration(rows + planned).tables
    unlabelled = [{k: v for k, v in p.items() if k != "label"} for p in planned]
    assert fit_calibration(rows + unlabelled).ms_per_mb > 0  # counted as ordinary runs, they would bring MB in


def test_the_planners_own_plans_change_a_plans_price_not_the_ranking_of_cuts():
    rng = np.random.default_rng(2)
    tables, act = rng.uniform(1.0, 2.0, 14), rng.uniform(0.5, 2.0, 14)
    rows = points(0.5 * tables + 0.3 * act + 0.2 + rng.normal(0, 0.001, 14), tables, act)
    planned = [{**r, "label": f"planned-{i}", "measured_ms": 1.3 * r["measured_ms"]} for i, r in enumerate(rows[:3])]
    alone, both = fit_calibration(rows), fit_calibration(rows + planned)
    assert alone.ms_per_mb > 0 and alone.tables and both.ms_per_mb > 0 and both.tables
    assert both.ms_per_mb / both.scale == pytest.approx(alone.ms_per_mb / alone.scale)  # cuts rank alike
    assert both.scale > 1.05 * alone.scale  # and the planned runs, 30 % slower, raise the price


def test_profile_fit_stored_refits_the_calibration_on_the_runs_the_profile_holds_without_timing(
        tiny_profile, tmp_path, monkeypatch):  # fmt: skip
    from click.testing import CliRunner

    from edgeprune.cli import main
    from edgeprune.latency import Profile, profiler
    from edgeprune.latency.calibration import refit_stored

    _, _, profile = tiny_profile
    cal = profile.calibration["cifar_resnet20"]
    stale = replace(profile, calibration={"cifar_resnet20": replace(cal, scale=5.0, offset_ms=9.0)})
    source, out = tmp_path / "old.json", tmp_path / "new.json"
    stale.save(source)
    monkeypatch.setattr(profiler, "measure_variants", lambda *a, **k: pytest.fail("--stored timed a run"))
    run = ["profile", "fit", "cpu-ort", "calibration", "--stored", "--model", "cifar_resnet20", "--profile",
           str(source)]  # fmt: skip
    r = CliRunner().invoke(main, [*run, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "cifar_resnet20: 5.000 x layers +9.000 ms ->" in r.output
    assert Profile.load(out).calibration["cifar_resnet20"] == refit_stored(stale, "cifar_resnet20")
    assert Profile.load(source).calibration["cifar_resnet20"].scale == 5.0  # the file read is left as it was
    r = CliRunner().invoke(main, [*run[:3], "widths", *run[4:]])
    assert r.exit_code == 2 and "--stored refits the calibration only" in r.output
    r = CliRunner().invoke(main, [*run[:6], "cifar_resnet32", *run[7:]])
    assert r.exit_code == 2 and "holds no calibration runs with their layers for cifar_resnet32" in r.output
