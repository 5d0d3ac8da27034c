"""The calibration's form: the terms that predict left-out end-to-end runs best, and how a prediction uses them."""

from dataclasses import replace

import numpy as np
import pytest
from test_latency_model import two_layer_profile

from edgeprune.latency.calibration import activations_mb, fit_calibration, fit_line
from edgeprune.latency.model import LatencyModel, activation_mb
from edgeprune.latency.profile import Calibration, ProfileError


def points(measured, layers_ms, act_mb=None):
    rows = [{"measured_ms": m, "layers_ms": t} for m, t in zip(measured, layers_ms)]
    return rows if act_mb is None else [{**r, "act_mb": a} for r, a in zip(rows, act_mb)]


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


def test_points_of_older_profiles_or_too_few_fit_the_plain_line():
    rng = np.random.default_rng(3)
    act = rng.uniform(0.5, 2.0, 10)
    measured, tables = 0.24 * act + 0.06, 1.3 + rng.normal(0, 0.05, 10)  # the activations would win...
    assert not fit_calibration(points(measured, tables, act)).tables
    old = points(measured, tables)  # ...but points stored before the term carry none
    assert fit_calibration(old) == fit_line(old)
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


def test_width_corrections_are_refused_where_the_tables_are_left_out():
    from edgeprune.latency.innet import fit_widths
    from edgeprune.targets import load_target

    profile, _ = two_layer_profile(Calibration(1.0, 0.5, [], 2.0, tables=False))
    with pytest.raises(ProfileError, match="leaves the layer tables out"):
        fit_widths(profile, load_target("cpu-ort"), "net")
