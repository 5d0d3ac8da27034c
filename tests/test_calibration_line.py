"""The calibration line of a measured profile: lookup variants chosen by residual, calibration points timed
beside the dense model, refits that keep the tables, the misalignment term, and one line per input size."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import FAST, assert_line_fits_its_points

from edgeprune.latency import Geometry, Profile, ProfileError, collect_layers, profiler
from edgeprune.latency.costs import make_cost
from edgeprune.latency.layers import Layer
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import Calibration, Table
from edgeprune.models import create_model
from edgeprune.targets import load_target


def rms_residual(profile: Profile, name: str) -> float:
    """RMS relative residual of ``name``'s calibration points against the line, as the profile predicts them."""
    cal, model = profile.calibration[name], LatencyModel(profile, name)
    errors = [(cal.scale * model.layers_ms(profile.model_layers(name, p)) + cal.offset_ms) / p["measured_ms"] - 1
              for p in cal.points]  # fmt: skip
    return (sum(e * e for e in errors) / len(errors)) ** 0.5


def test_lookup_variant_is_chosen_by_calibration_residual(tiny_profile):
    _, _, profile = tiny_profile
    points = {name: cal.points for name, cal in profile.calibration.items()}
    assert [p["label"] for p in points["cifar_resnet20"]] == ["uniform-0.0", "uniform-0.5", "random-0", "blocked-0"]
    chosen = rms_residual(profile, "cifar_resnet20")
    for choice in profiler.LOOKUP_CHOICES:  # the best fit with each variant alone explains the runs no better
        alone = profiler.choose_lookup_and_calibrate(profile, points, choices=[choice])
        assert (alone.channel_block, alone.use_scan) == choice
        assert chosen <= rms_residual(alone, "cifar_resnet20") + 1e-12


def test_calibration_points_are_ratios_to_the_dense_model_timed_beside_them(monkeypatch):
    """The machine slows 3x halfway through: points timed one after the other would bend the line; points
    taken as ratios to the dense session beside them do not."""
    slow = [1.0, 1.0, 3.0, 3.0]  # the dense model's ms in each pair: the machine slowed for the last two

    def fake_pairs(target, models, shape, passes=1, desc=""):
        # [dense, dense as uniform-0.0, 0.5, random-0, blocked-0 (on the CPU's channel blocking)]
        assert len(models) == 5 and models[0] is models[1]
        return [[(d, d * ratio) for d, ratio in zip(slow, (1.0, 0.5, 0.8, 0.7))]]

    monkeypatch.setattr(profiler, "measure_variants", fake_pairs)
    points = profiler.calibration_points(load_target("cpu-ort"), "cifar_resnet20", FAST)
    assert [p["label"] for p in points] == ["uniform-0.0", "uniform-0.5", "random-0", "blocked-0"]
    assert [p["measured_ratio"] for p in points] == pytest.approx([1.0, 0.5, 0.8, 0.7])
    assert [p["measured_ms"] for p in points] == pytest.approx([2.0, 1.0, 1.6, 1.4])  # x the median dense ms, 2.0
    assert points[2]["dense_ms"] == 3.0


def test_a_calibration_run_whose_sessions_disagree_is_timed_again_and_keeps_the_median(monkeypatch):
    """One session ran a program 30 % slow (as ExecuTorch lowerings sometimes do): the two passes disagree on that
    run alone, which is timed a third time, and the median of its three ratios outvotes the slow one."""
    calls = []

    def fake_pairs(target, models, shape, passes=1, desc=""):
        calls.append((len(models), passes))
        if len(calls) == 1:  # [dense, dense as uniform-0.0, 0.5, random-0, blocked-0]; random-0 slow in pass 2
            return [[(2.0, 2.0), (2.0, 1.0), (2.0, 1.6), (2.0, 1.4)],
                    [(2.0, 2.0), (2.0, 1.02), (2.0, 2.08), (2.0, 1.4)]]
        return [[(2.0, 1.62)]]  # random-0 once more

    monkeypatch.setattr(profiler, "measure_variants", fake_pairs)
    points = profiler.calibration_points(load_target("cpu-ort"), "cifar_resnet20", FAST)
    assert calls == [(5, 2), (2, 1)]  # both passes of every run, then the one run whose passes disagreed
    assert [p["measured_ratio"] for p in points] == pytest.approx([1.0, 0.505, 0.81, 0.7])
    assert points[2]["ratios"] == pytest.approx([0.8, 1.04, 0.81])


def test_recalibrate_keeps_the_tables_and_refits_the_line(tiny_profile):
    target, path, _ = tiny_profile
    stored = Profile.load(path)
    before = stored.to_dict()
    fast = replace(target, repeats=2, rounds=2)
    again = profiler.recalibrate_profile(stored, fast, ["cifar_resnet20"], FAST)
    assert stored.to_dict() == before  # a new profile: the one given is left as it was
    assert {k: vars(t) for k, t in again.tables.items()} == {k: vars(t) for k, t in stored.tables.items()}
    points = again.calibration["cifar_resnet20"].points
    assert [p["label"] for p in points] == ["uniform-0.0", "uniform-0.5", "random-0", "blocked-0"]
    assert points != stored.calibration["cifar_resnet20"].points and all("measured_ratio" in p for p in points)
    assert again.settings["end_to_end"]["rounds"] == 2
    assert again.settings["calibration"] == {"uniform": [0.0, 0.5], "random": 1, "blocked": 1, "planned": []}
    assert_line_fits_its_points(again, "cifar_resnet20")
    with pytest.raises(ProfileError, match="never measured"):
        profiler.recalibrate_profile(stored, fast, ["cifar_vgg16"], FAST)
    other = replace(fast, threads=fast.threads + 1)
    with pytest.raises(ProfileError, match="another cpu-ort set-up"):
        profiler.recalibrate_profile(again, other, ["cifar_resnet20"], FAST)


def test_misalignment_term_is_charged_off_the_blocking_and_fitted_by_calibration(tiny_profile):
    from edgeprune.latency.model import activation_mb

    _, path, fitted = tiny_profile
    profile = replace(fitted, misalign={})
    layer = next(x for x in collect_layers(create_model("cifar_resnet20"), (1, 3, 32, 32)) if x.cin == x.cout == 16)
    plain = {c: LatencyModel(profile).layer_ms(layer, c, 16)[0] for c in (16, 12)}
    charged = LatencyModel(replace(profile, misalign={"align": 16, "ms_per_mb": 0.1, "ms_per_layer": 0.01}))
    assert charged.layer_ms(layer, 16, 16)[0] == plain[16]  # on the blocking: no extra
    extra = 0.1 * activation_mb(layer.geometry, 12, 16) + 0.01
    assert charged.layer_ms(layer, 12, 16)[0] == pytest.approx(plain[12] + extra)
    # Calibration runs that do pay such a term: the chooser finds it again (block, scans fixed).
    truth = {"align": 8, "ms_per_mb": 0.2, "ms_per_layer": 0.0}
    paying = LatencyModel(replace(profile, misalign=truth))
    points = {name: [{k: q[k] for k in ("label", "layers", "measured_ms")} for q in cal.points]
              for name, cal in fitted.calibration.items()}  # fmt: skip
    for pts in points.values():
        for q in pts:
            ls = [Layer(f"l{i}", Geometry.from_key(k), ci, co) for i, (k, ci, co) in enumerate(q["layers"])]
            q["measured_ms"] = 2.0 * paying.layers_ms(ls) + 0.3
    profile = profiler.choose_lookup_and_calibrate(profile, points, choices=[(profile.channel_block, profile.use_scan)])
    assert profile.misalign == truth
    cal = profile.calibration["cifar_resnet20"]
    assert cal.scale == pytest.approx(2.0) and cal.offset_ms == pytest.approx(0.3)
    assert Profile.from_dict(profile.to_dict()).misalign == truth
    with pytest.raises(ProfileError, match="misalign"):
        Profile.from_dict({**profile.to_dict(), "misalign": {"align": 8}})


def test_a_profile_at_another_input_size_keeps_its_own_calibration_line(tmp_path, monkeypatch):
    """Measured at 16 px instead of cifar_resnet20's 32, the layers are the 16 px ones and the line is keyed
    name@16: the planner at 16 px uses it, at 32 px the plain name's line (here: none, so the plain sum).
    Measuring the registry size into the same file then adds its tables and line and keeps the 16 px ones."""
    sides = []

    def fake_table(target, key, cin_axis, cout_axis, tmp, timing="wall", settings=None):
        ms = [1.0] * len(cin_axis) if cout_axis is None else [[1.0] * len(cout_axis) for _ in cin_axis]
        return Table(cin_axis, cout_axis, ms, ms)

    def fake_pairs(target, models, shape, passes=1, desc=""):
        sides.append(shape[-1])  # the variants are built and timed at the given size
        return [[(1.0, 2.0) for _ in models[1:]]]

    monkeypatch.setattr(profiler, "measure_table", fake_table)
    monkeypatch.setattr(profiler, "measure_variants", fake_pairs)
    path = tmp_path / "p.json"
    profile = profiler.profile_target(load_target("cpu-ort"), ["cifar_resnet20"], path, progress=False,
                                      settings=FAST, side=16)  # fmt: skip
    assert list(Profile.load(path).calibration) == ["cifar_resnet20@16"] and sides == [16]
    assert {(g.h, g.w) for g in map(Geometry.from_key, profile.tables)} == {(16, 16), (8, 8), (4, 4), (1, 1)}
    assert LatencyModel(profile, "cifar_resnet20", 16).calibration is profile.calibration["cifar_resnet20@16"]
    assert LatencyModel(profile, "cifar_resnet20", 32).calibration is None
    both = replace(profile, calibration={"cifar_resnet20": Calibration(1.0), "cifar_resnet20@16": Calibration(3.0)})
    assert make_cost("latency", both, "cifar_resnet20", 16).calibration.scale == 3.0
    assert make_cost("latency", both, "cifar_resnet20", 32).calibration.scale == 1.0
    assert make_cost("latency", both, "cifar_resnet20").calibration.scale == 1.0
    # the 16 px line and lookup as another fit left them: measuring 32 px into the file must not touch them
    line = replace(profile.calibration["cifar_resnet20@16"], scale=3.0, offset_ms=0.25)
    own = {"channel_block": 16, "use_scan": False, "misalign": {}}
    replace(profile, calibration={"cifar_resnet20@16": line}, lookups={"cifar_resnet20@16": own}).save(path)
    added = profiler.profile_target(load_target("cpu-ort"), ["cifar_resnet20"], path, progress=False, settings=FAST)
    assert sorted(added.calibration) == ["cifar_resnet20", "cifar_resnet20@16"] and sides == [16, 32]
    assert added.calibration["cifar_resnet20@16"] == line and added.lookup_for("cifar_resnet20@16") == (16, False, {})
    assert {(g.h, g.w) for g in map(Geometry.from_key, added.tables)} == {(32, 32), (16, 16), (8, 8), (4, 4), (1, 1)}

