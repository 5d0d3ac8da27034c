"""Latency profiles measured for real: the profile file, the predictor check, in-network fits, calibration, the
kit, plots and the profile command. The model priced by hand is in test_latency_model.py."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import pytest
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.latency import (
    Geometry,
    Profile,
    ProfileError,
    ProfileMismatchWarning,
    collect_layers,
    innet,
    profiler,
    tables,
)
from edgeprune.latency.check import check_profile, check_variants, describe_check, error_row, summarize
from edgeprune.latency.costs import make_cost
from edgeprune.latency.innet import fit_widths
from edgeprune.latency.layers import Layer
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import Calibration, ProfileSettings, Table
from edgeprune.models import create_model
from edgeprune.targets import load_target

# coarse and short: 2 grid points per axis, a short scan, 3 calibration plans, one timing round per micro-model
FAST = ProfileSettings(grid_fractions=(0.5, 1.0), micro_timing={"warmup": 1, "repeats": 3, "rounds": 1},
                       scan={"span": 4, "step": 2}, calibration_ratios=(0.0, 0.5), calibration_random=1)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory):
    """A real but coarse cpu-ort profile of cifar_resnet20."""
    target = load_target("cpu-ort")
    fast = profiler.replace(target, warmup=2, repeats=5, rounds=1)
    path = tmp_path_factory.mktemp("prof") / "p.json"
    profile = profiler.profile_target(fast, ["cifar_resnet20"], path, progress=False, settings=FAST)
    return fast, path, profile


def assert_dense_model_is_on_its_calibration_line(profile: Profile, name: str, layers) -> None:
    """Every layer of the dense model runs, so the offset's per-layer shares add up to the whole offset."""
    cal, model = profile.calibration[name], LatencyModel(profile, name)
    pred = model.predict(layers)
    assert pred.calibrated and pred.ms == pytest.approx(cal.scale * model.layers_ms(layers) + cal.offset_ms)
    assert pred.ms == pytest.approx(model.total(sum(pred.per_layer.values())))


def test_profile_file_round_trips_and_predicts(tiny_profile):
    target, path, profile = tiny_profile
    loaded = Profile.load(path, strict=True)
    assert loaded.to_dict() == profile.to_dict() and set(loaded.tables) == set(grid_axes_of("cifar_resnet20"))
    layers = collect_layers(create_model("cifar_resnet20"), (1, 3, 32, 32))
    pred = LatencyModel(loaded, "cifar_resnet20").predict(layers)
    assert pred.ms == LatencyModel(profile, "cifar_resnet20").predict(layers).ms and not pred.extrapolated
    assert set(pred.per_layer) == {layer.path for layer in layers}
    assert_dense_model_is_on_its_calibration_line(loaded, "cifar_resnet20", layers)
    assert settings_stamp(loaded) == (list(FAST.grid_fractions), FAST.micro_timing, FAST.scan)
    assert not path.with_suffix(".partial.json").exists()
    retimed, spikes, timed = loaded.disputed()  # the sweep's counts, kept in the file
    grids = sum(len(t.cin) * len(t.cout or [0]) for t in loaded.tables.values())
    assert grids <= timed <= grids + sum(len(t.scan_c or []) for t in loaded.tables.values())
    assert 0 <= retimed <= timed and 0 <= spikes <= timed


def grid_axes_of(name: str) -> dict:
    return tables.grid_axes(collect_layers(create_model(name), (1, 3, 32, 32)), FAST)


def settings_stamp(profile: Profile) -> tuple:
    return profile.settings["grid_fractions"], profile.settings["micro_timing"], profile.settings["scan"]


def test_predictor_error_is_measured_on_random_plans_beside_the_dense_model(tiny_profile):
    target, path, profile = tiny_profile
    report = check_profile(profile, target, "cifar_resnet20", n_plans=2, passes=2)
    assert len(report["plans"]) == 2
    _, layers = check_variants("cifar_resnet20", target, 2)  # the same seeded plans, predicted as the planner would
    model = LatencyModel(profile, "cifar_resnet20")
    assert report["dense_predicted_ms"] == model.predict(layers[0]).ms
    for r, variant in zip(report["plans"], layers[1:]):
        assert r["predicted_ms"] == model.predict_pruned(layers[0], variant).ms
        assert len(r["passes_ms"]) == len(r["passes_dense_ms"]) == 2 and min(r["passes_ms"] + r["passes_dense_ms"]) > 0
        assert r["measured_speedup"] == pytest.approx(r["dense_ms"] / r["measured_ms"])
        assert r["predicted_speedup"] == pytest.approx(report["dense_predicted_ms"] / r["predicted_ms"])
    assert report["max_abs_error_pct"] >= report["median_abs_error_pct"] >= 0
    assert report["max_abs_speedup_error_pct"] >= report["median_abs_speedup_error_pct"] >= 0
    assert report["repeat_max_abs_pct"] >= report["repeat_median_abs_pct"] >= 0
    assert "pass to pass" in describe_check(report)


def test_width_scale_scales_a_layers_saving_from_its_own_dense_widths_in_its_own_model(tiny_profile):
    _, _, profile = tiny_profile
    dense = collect_layers(create_model("cifar_resnet20"), (1, 3, 32, 32))
    layer = next(x for x in dense if x.geometry.op == "conv" and x.cin == x.cout == 32)
    key = layer.geometry.key
    plain = replace(profile, width_scale={}, misalign={})  # the scale bends the table, not the misalignment term

    def ms(p: Profile, c: int, model: str = "cifar_resnet20", x=layer) -> float:
        return LatencyModel(p, model).layer_ms(x, c, c)[0]

    full, narrow = ms(plain, 32), ms(plain, 16)
    flat = plain.with_width_scales("cifar_resnet20", {key: 0.0}, dense)
    doubled = plain.with_width_scales("cifar_resnet20", {key: 2.0}, dense)
    assert plain.width_scale == {}  # copies: the profile itself is left as it was
    for p in (flat, doubled):  # at its dense widths a layer costs its table entry, whatever the scale
        assert ms(p, 32) == pytest.approx(full)
    assert ms(flat, 16) == pytest.approx(full)
    assert ms(doubled, 16) == pytest.approx(2 * narrow - full)
    # another model with the same geometry, or a layer the fit never saw, keeps the table as measured
    assert ms(doubled, 16, "cifar_resnet56") == pytest.approx(narrow)
    assert ms(doubled, 16, x=replace(layer, path="elsewhere")) == pytest.approx(narrow)
    again = Profile.from_dict(doubled.to_dict())
    assert again.width_scale == doubled.width_scale
    assert ms(again, 16) == pytest.approx(2 * narrow - full)
    with pytest.raises(ProfileError, match="without a table"):
        bad = {"cifar_resnet20": {"scales": {"conv|b1|1x1|k1|s1|gw0|fp32": 1.0}, "dense": []}}
        Profile.from_dict({**doubled.to_dict(), "width_scale": bad})
    with pytest.raises(ProfileError, match="before per-model"):  # the old flat {geometry: scale} format
        Profile.from_dict({**doubled.to_dict(), "width_scale": {key: 1.0}})
    moved = [replace(x, cin=16, cout=16) if x.path == layer.path else x for x in dense]
    refit = doubled.with_width_scales("cifar_resnet20", {key: 2.0}, moved)  # a refit that records 16 as dense
    assert ms(refit, 16) == pytest.approx(narrow)  # nothing saved at 16


def test_in_network_fit_sets_scales_for_the_narrowed_geometries(tiny_profile, monkeypatch):
    target, _, profile = tiny_profile
    profile = replace(profile, width_scale={})
    monkeypatch.setattr(innet, "CONTROL_ATTEMPTS", 1)
    with pytest.raises(innet.UnsteadyMeasurement, match="too unsteady"):  # any control deviation at all: refused
        fit_widths(profile, target, "cifar_resnet20", rounds=1, settings=ProfileSettings(control_tolerance=-1.0))
    before = profile.to_dict()
    noisy = ProfileSettings(control_tolerance=10.0)  # the test's short timing is noisy: accept it
    fitted, rows = fit_widths(profile, target, "cifar_resnet20", rounds=1, settings=noisy)
    assert profile.to_dict() == before  # the fit returns a new profile and leaves its input as it was
    assert rows and {r["geometry"] for r in rows} <= set(profile.tables)
    # several widths per geometry (32 channels: 8, 16, 24), and 0.75 of 16 rounds back to 16: no variant
    per_geometry = [sum(r["geometry"] == g for r in rows) for g in {r["geometry"] for r in rows}]
    assert max(per_geometry) == 3 and min(per_geometry) >= 1 and len({r["variant"] for r in rows}) == len(rows)
    # geometries whose table saves nothing at these widths have nothing to scale; the rest are fitted
    scales = fitted.width_scale["cifar_resnet20"]["scales"]
    assert scales and set(scales) <= set(profile.tables) and all(0.0 <= v <= 3.0 for v in scales.values())
    assert all(r["width_scale"] == scales.get(r["geometry"]) for r in rows)
    assert len(fitted.width_scale["cifar_resnet20"]["dense"]) == 20  # 19 convs and the classifier
    assert fitted.calibration["cifar_resnet20"] != profile.calibration["cifar_resnet20"]
    assert_line_fits_its_points(fitted, "cifar_resnet20")  # refitted on its stored points, as the widths price them


def test_check_summary_separates_drift_from_speedup_error():
    # The machine got 20 % slower since profiling: every ms error is about -17 %, every speedup exact.
    rows = [error_row(p, 10.0, [1.2 * p], [12.0]) for p in (5.0, 8.0)]
    summary = summarize(rows, 10.0)
    assert summary["median_abs_error_pct"] == pytest.approx(100 / 6)
    assert summary["max_abs_speedup_error_pct"] == pytest.approx(0.0, abs=1e-9)
    rows = [error_row(5.0, 10.0, [6.0, 6.6], [12.0, 12.0])]  # the second pass timed the variant 10 % slower
    summary = summarize(rows, 10.0)
    assert summary["repeat_max_abs_pct"] == pytest.approx(10.0)
    assert summary["repeat_speedup_max_abs_pct"] == pytest.approx(100 * (1 / 1.1 - 1) * -1)


def test_corrupt_truncated_and_foreign_profiles(tiny_profile, tmp_path):
    _, path, _ = tiny_profile
    text = path.read_text()
    (tmp_path / "trunc.json").write_text(text[: len(text) // 2])
    with pytest.raises(ProfileError, match="truncated or corrupt"):
        Profile.load(tmp_path / "trunc.json")
    data = json.loads(text)
    key = next(iter(data["tables"]))
    data["tables"][key]["ms"] = [1.0]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="wrong shape"):
        Profile.load(tmp_path / "bad.json")
    data = json.loads(text)
    data["device"]["cpu"] = "Some Other CPU"
    (tmp_path / "foreign.json").write_text(json.dumps(data))
    with pytest.warns(ProfileMismatchWarning, match="Some Other CPU"):
        Profile.load(tmp_path / "foreign.json")
    with pytest.raises(ProfileError, match="measured elsewhere"):
        Profile.load(tmp_path / "foreign.json", strict=True)


def test_layer_outside_the_profile_is_an_error(tiny_profile):
    _, _, profile = tiny_profile
    with pytest.raises(ProfileError, match="not in the profile"):
        LatencyModel(profile).predict(collect_layers(create_model("cifar_vgg16"), (1, 3, 32, 32)))


def test_budget_exceeded_keeps_partial_and_never_writes_the_profile(tmp_path, monkeypatch):
    quick = ProfileSettings(grid_fractions=(1.0,), scan={"span": 0, "step": 2},
                            micro_timing={"warmup": 0, "repeats": 1, "rounds": 1})  # fmt: skip
    good = tmp_path / "p.json"
    good.write_text("GOOD")
    clock = iter(range(0, 10_000, 100))
    monkeypatch.setattr(profiler.time, "monotonic", lambda: next(clock))
    with pytest.raises(profiler.ProfileBudgetExceeded, match="rerun to resume"):
        profiler.profile_target(load_target("cpu-ort"), ["cifar_resnet20"], good, budget_s=150, progress=False,
                                settings=quick)  # fmt: skip
    assert good.read_text() == "GOOD"
    partial = json.loads(good.with_suffix(".partial.json").read_text())
    assert 1 <= len(partial["tables"]) < 6  # some tables done, kept for the resumed run


def test_cli_profile_errors(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["profile", "measure", "no-such-target", "--model", "cifar_resnet20"])
    assert out.exit_code == 1 and "unknown target" in out.output
    out = runner.invoke(main, ["profile", "measure", "cuda-torch-fp16", "--model", "cifar_resnet20",
                               "--out", str(tmp_path / "x.json")])  # fmt: skip
    assert out.exit_code == 1 and "cannot run here" in out.output and not (tmp_path / "x.json").exists()
    (tmp_path / "cut.json").write_text("{")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = runner.invoke(main, ["profile", "check", "cpu-ort", "--model", "cifar_resnet20", "--plans", "2",
                                   "--profile", str(tmp_path / "cut.json")])  # fmt: skip
    assert out.exit_code == 1 and "truncated or corrupt" in out.output


def test_kit_round_trip_without_torch(tmp_path, monkeypatch):
    """kit -> the kit's own collect.py in a process where torch and edgeprune cannot be imported -> import."""
    import subprocess
    import sys

    from edgeprune.latency.kit import import_result, write_kit

    quick = replace(FAST, scan={"span": 0, "step": 2}, micro_timing={"warmup": 1, "repeats": 2, "rounds": 1})
    target = profiler.replace(load_target("cpu-ort"), warmup=1, repeats=3, rounds=1)
    kit = write_kit(target, ["cifar_resnet20"], tmp_path / "kit", quick)
    with pytest.raises(FileExistsError):
        write_kit(target, ["cifar_resnet20"], kit)
    script = kit / "collect.py"  # write_kit copies the collector and its timing module into the kit
    blocker = ("import sys, runpy; sys.modules['torch'] = None; sys.modules['edgeprune'] = None; "
               f"sys.argv = ['collect.py', {str(kit)!r}]; runpy.run_path({str(script)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    profile = import_result(kit / "result.json")
    assert "cifar_resnet20" in profile.calibration and len(profile.tables) == 6
    points = profile.calibration["cifar_resnet20"].points  # each timed beside the dense model, on the device too
    assert points[0]["label"] == "uniform-0.0" and 0.5 < points[0]["measured_ratio"] < 2  # dense beside itself
    assert all(p["measured_ratio"] > 0 for p in points)
    assert len(points) == 3 and settings_stamp(profile) == (list(quick.grid_fractions), quick.micro_timing, quick.scan)
    layers = collect_layers(create_model("cifar_resnet20"), (1, 3, 32, 32))
    assert_dense_model_is_on_its_calibration_line(profile, "cifar_resnet20", layers)
    runner = CliRunner()
    result = str(kit / "result.json")
    out = runner.invoke(main, ["profile", "import", "cpu-ort", result, "--out", str(tmp_path / "p.json")])
    assert out.exit_code == 0, out.output
    assert Profile.load(tmp_path / "p.json").tables.keys() == profile.tables.keys()
    out = runner.invoke(main, ["profile", "import", "cpu-torch", result, "--out", str(tmp_path / "q.json")])
    assert out.exit_code == 1 and "measured for target" in out.output and not (tmp_path / "q.json").exists()


def test_staircase_from_a_scan():
    t = Table([8, 16], [8, 16], [[1.0, 1.0], [1.0, 2.0]], [[0, 0], [0, 0]],
              scan_c=[10, 12, 14, 16], scan_ms=[1.0, 1.0, 1.5, 1.5])
    assert t.efficient_widths() == [12, 16]  # 12 -> 14 steps up; 16 is the top
    # The scan corrects the coarse grid between its points: 13 costs like the stair it sits on.
    assert t.lookup(16, 12, use_scan=True)[0] < t.lookup(16, 14, use_scan=True)[0]
    assert t.lookup(16, 12, use_scan=False)[0] == pytest.approx(1.5)


def test_group_staircases_and_plot(tiny_profile, tmp_path):
    import torch

    from edgeprune.graph import build_graph
    from edgeprune.latency.staircase import group_staircases, plot_staircases

    _, _, profile = tiny_profile
    model = create_model("cifar_resnet20")
    layers = collect_layers(model, (1, 3, 32, 32))
    graph = build_graph(model, torch.randn(1, 3, 32, 32))
    stairs = group_staircases(graph, layers, profile, tol_pct=-100)  # every scanned width counts as a step
    assert stairs and all(ws == sorted(ws) and max(ws) <= graph.groups[g].size for g, ws in stairs.items())
    keys = plot_staircases(profile, layers, tmp_path / "stairs.png")
    assert keys and (tmp_path / "stairs.png").stat().st_size > 1000


def test_torch_target_profiles_with_torch_micro_models(tmp_path):
    quick = replace(FAST, scan={"span": 2, "step": 2}, micro_timing={"warmup": 1, "repeats": 2, "rounds": 1})
    target = profiler.replace(load_target("cpu-torch"), warmup=1, repeats=3, rounds=1)
    profile = profiler.profile_target(target, ["cifar_resnet20"], tmp_path / "t.json", progress=False, settings=quick)
    assert profile.target["backend"] == "torch" and set(profile.tables) == set(grid_axes_of("cifar_resnet20"))
    assert all(len(t.scan_c) == 2 for t in profile.tables.values())  # span 2, step 2: the top width and 2 below
    assert_dense_model_is_on_its_calibration_line(
        profile, "cifar_resnet20", collect_layers(create_model("cifar_resnet20"), (1, 3, 32, 32)))


def rms_residual(profile: Profile, name: str) -> float:
    """RMS relative residual of ``name``'s calibration points against the line, as the profile predicts them."""
    cal, model = profile.calibration[name], LatencyModel(profile, name)
    errors = [(cal.scale * model.layers_ms(profile.model_layers(name, p)) + cal.offset_ms) / p["measured_ms"] - 1
              for p in cal.points]  # fmt: skip
    return (sum(e * e for e in errors) / len(errors)) ** 0.5


def test_lookup_variant_is_chosen_by_calibration_residual(tiny_profile):
    _, _, profile = tiny_profile
    points = {name: cal.points for name, cal in profile.calibration.items()}
    assert [p["label"] for p in points["cifar_resnet20"]] == ["uniform-0.0", "uniform-0.5", "random-0"]
    chosen = rms_residual(profile, "cifar_resnet20")
    for choice in profiler.LOOKUP_CHOICES:  # the best fit with each variant alone explains the runs no better
        alone = profiler.choose_lookup_and_calibrate(profile, points, choices=[choice])
        assert (alone.channel_block, alone.use_scan) == choice
        assert chosen <= rms_residual(alone, "cifar_resnet20") + 1e-12


def test_calibration_points_are_ratios_to_the_dense_model_timed_beside_them(monkeypatch):
    """The machine slows 3x halfway through: points timed one after the other would bend the line; points
    taken as ratios to the dense session beside them do not."""
    slow = [1.0, 1.0, 3.0]  # the dense model's ms in each pair: the machine slowed for the last one

    def fake_pairs(target, models, shape, passes=1, desc=""):
        assert len(models) == 4 and models[0] is models[1]  # [dense, dense as uniform-0.0, 0.5, random-0]
        return [[(d, d * ratio) for d, ratio in zip(slow, (1.0, 0.5, 0.8))]]

    monkeypatch.setattr(profiler, "measure_variants", fake_pairs)
    points = profiler.calibration_points(load_target("cpu-ort"), "cifar_resnet20", FAST)
    assert [p["label"] for p in points] == ["uniform-0.0", "uniform-0.5", "random-0"]
    assert [p["measured_ratio"] for p in points] == pytest.approx([1.0, 0.5, 0.8])
    assert [p["measured_ms"] for p in points] == pytest.approx([1.0, 0.5, 0.8])  # x the median dense ms, 1.0
    assert points[2]["dense_ms"] == 3.0


def test_recalibrate_keeps_the_tables_and_refits_the_line(tiny_profile):
    target, path, _ = tiny_profile
    stored = Profile.load(path)
    before = stored.to_dict()
    fast = replace(target, repeats=2, rounds=2)
    again = profiler.recalibrate_profile(stored, fast, ["cifar_resnet20"], FAST)
    assert stored.to_dict() == before  # a new profile: the one given is left as it was
    assert {k: vars(t) for k, t in again.tables.items()} == {k: vars(t) for k, t in stored.tables.items()}
    points = again.calibration["cifar_resnet20"].points
    assert [p["label"] for p in points] == ["uniform-0.0", "uniform-0.5", "random-0"]
    assert points != stored.calibration["cifar_resnet20"].points and all("measured_ratio" in p for p in points)
    assert again.settings["end_to_end"]["rounds"] == 2 and again.settings["calibration"] == {"uniform": [0.0, 0.5],
                                                                                              "random": 1}
    assert_line_fits_its_points(again, "cifar_resnet20")
    with pytest.raises(ProfileError, match="never measured"):
        profiler.recalibrate_profile(stored, fast, ["cifar_vgg16"], FAST)
    other = replace(fast, threads=fast.threads + 1)
    with pytest.raises(ProfileError, match="another cpu-ort set-up"):
        profiler.recalibrate_profile(again, other, ["cifar_resnet20"], FAST)


def assert_line_fits_its_points(profile: Profile, name: str) -> None:
    """The calibration line is the least-squares line through its points, priced as the profile prices them."""
    import numpy as np

    cal, model = profile.calibration[name], LatencyModel(profile, name)
    xs = [model.layers_ms(profile.model_layers(name, p)) for p in cal.points]
    assert [cal.scale, cal.offset_ms] == pytest.approx(list(np.polyfit(xs, [p["measured_ms"] for p in cal.points], 1)))


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

