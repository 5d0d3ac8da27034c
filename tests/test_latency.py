"""Latency profiles: micro-models, tables, the predictor, file validation, and the profile command."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import onnxruntime as ort
import pytest
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.latency import Geometry, Profile, ProfileError, ProfileMismatchWarning, collect_layers, innet, profiler
from edgeprune.latency.check import check_profile, describe_check, error_row, summarize
from edgeprune.latency.innet import fit_width_scales
from edgeprune.latency.micro import input_for, micro_model
from edgeprune.latency.profile import Table, misaligned
from edgeprune.models import create_model
from edgeprune.targets import load_target


@pytest.mark.parametrize("op,gw", [("conv", 0), ("dwconv", 1), ("gconv", 4), ("linear", 0)])
def test_micro_models_run_with_the_declared_shapes(op, gw):
    g = Geometry(op, 1, 8, 8, 3 if op != "linear" else 1, 2 if op == "conv" else 1, gw)
    cin, cout = (8, 8) if op in ("dwconv", "gconv") else (6, 5)
    model = micro_model(g, cin, cout)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": input_for(g, cin)})[0]
    assert out.shape[1] == cout


def test_collect_layers_sees_depthwise_and_linear():
    layers = collect_layers(create_model("mobilenet_v3_small"), (1, 3, 64, 64))
    ops = {layer.geometry.op for layer in layers}
    assert {"conv", "dwconv", "linear"} <= ops
    assert all(layer.geometry.key == Geometry.from_key(layer.geometry.key).key for layer in layers)


def test_table_bilinear_lookup_and_extrapolation_flag():
    t = Table([8, 16], [8, 16], [[1.0, 2.0], [3.0, 4.0]], [[0, 0], [0, 0]])
    assert t.lookup(8, 8) == (1.0, False)
    assert t.lookup(12, 12) == (2.5, False)
    assert t.lookup(32, 16) == (4.0, True)  # clamped and flagged
    t1 = Table([4, 8], None, [1.0, 3.0], [0, 0])
    assert t1.lookup(6, 6) == (2.0, False)


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory):
    """A real but coarse cpu-ort profile of cifar_resnet20 (2 grid points per axis, short timing)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(profiler, "GRID_FRACTIONS", (0.5, 1.0))
    mp.setattr(profiler, "MICRO_TIMING", {"warmup": 1, "repeats": 3, "rounds": 1})
    mp.setattr(profiler, "CALIBRATION_RATIOS", (0.0, 0.5))
    mp.setattr(profiler, "CALIBRATION_RANDOM", 1)
    mp.setattr(profiler, "SCAN", {"span": 4, "step": 2})
    target = load_target("cpu-ort")
    fast = profiler.replace(target, warmup=2, repeats=5, rounds=1)
    path = tmp_path_factory.mktemp("prof") / "p.json"
    profile = profiler.profile_target(fast, ["cifar_resnet20"], path, progress=False)
    yield fast, path, profile
    mp.undo()


def test_profile_file_round_trips_and_predicts(tiny_profile):
    target, path, profile = tiny_profile
    loaded = Profile.load(path, strict=True)
    assert set(loaded.tables) == set(profile.tables) and "cifar_resnet20" in loaded.calibration
    layers = collect_layers(create_model("cifar_resnet20"), (1, 3, 32, 32))
    pred = loaded.predict(layers, "cifar_resnet20")
    assert pred.ms > 0 and pred.calibrated and not pred.extrapolated
    assert set(pred.per_layer) == {layer.path for layer in layers}
    assert not path.with_suffix(".partial.json").exists()


def test_predictor_error_is_measured_on_random_plans_beside_the_dense_model(tiny_profile):
    target, path, profile = tiny_profile
    report = check_profile(profile, target, "cifar_resnet20", n_plans=2, passes=2)
    assert len(report["plans"]) == 2
    for r in report["plans"]:
        assert len(r["passes_ms"]) == len(r["passes_dense_ms"]) == 2 and min(r["passes_ms"] + r["passes_dense_ms"]) > 0
        assert r["measured_speedup"] == pytest.approx(r["dense_ms"] / r["measured_ms"])
        assert r["predicted_speedup"] == pytest.approx(report["dense_predicted_ms"] / r["predicted_ms"])
        assert r["predicted_speedup"] > 0 and r["measured_speedup"] > 0
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
    full, narrow = plain.layer_ms(layer, 32, 32)[0], plain.layer_ms(layer, 16, 16)[0]
    flat, doubled = replace(plain, width_scale={}), replace(plain, width_scale={})
    flat.set_width_scales("cifar_resnet20", {key: 0.0}, dense)
    doubled.set_width_scales("cifar_resnet20", {key: 2.0}, dense)
    for p in (flat, doubled):  # at its dense widths a layer costs its table entry, whatever the scale
        assert p.layer_ms(layer, 32, 32, "cifar_resnet20")[0] == pytest.approx(full)
    assert flat.layer_ms(layer, 16, 16, "cifar_resnet20")[0] == pytest.approx(full)
    assert doubled.layer_ms(layer, 16, 16, "cifar_resnet20")[0] == pytest.approx(2 * narrow - full)
    # another model with the same geometry, or a layer the fit never saw, keeps the table as measured
    assert doubled.layer_ms(layer, 16, 16, "cifar_resnet56")[0] == pytest.approx(narrow)
    assert doubled.layer_ms(replace(layer, path="elsewhere"), 16, 16, "cifar_resnet20")[0] == pytest.approx(narrow)
    again = Profile.from_dict(doubled.to_dict())
    assert again.width_scale == doubled.width_scale
    assert again.layer_ms(layer, 16, 16, "cifar_resnet20")[0] == pytest.approx(2 * narrow - full)
    with pytest.raises(ProfileError, match="without a table"):
        bad = {"cifar_resnet20": {"scales": {"conv|b1|1x1|k1|s1|gw0|fp32": 1.0}, "dense": []}}
        Profile.from_dict({**doubled.to_dict(), "width_scale": bad})
    with pytest.raises(ProfileError, match="before per-model"):  # the old flat {geometry: scale} format
        Profile.from_dict({**doubled.to_dict(), "width_scale": {key: 1.0}})
    moved = [replace(x, cin=16, cout=16) if x.path == layer.path else x for x in dense]
    doubled.set_width_scales("cifar_resnet20", {key: 2.0}, moved)  # a refit that records 16 as its dense width
    assert doubled.layer_ms(layer, 16, 16, "cifar_resnet20")[0] == pytest.approx(narrow)  # nothing saved at 16


def test_in_network_fit_sets_scales_for_the_narrowed_geometries(tiny_profile, monkeypatch):
    target, _, profile = tiny_profile
    profile = replace(profile, width_scale={}, calibration=dict(profile.calibration))
    monkeypatch.setattr(innet, "CONTROL_TOLERANCE", -1.0)  # any control deviation at all: refused
    with pytest.raises(innet.UnsteadyMeasurement, match="too unsteady"):
        fit_width_scales(profile, target, "cifar_resnet20", rounds=1)
    assert profile.width_scale == {}  # a refused fit changes nothing
    monkeypatch.setattr(innet, "CONTROL_TOLERANCE", 10.0)  # the test's short timing is noisy: accept it
    rows = fit_width_scales(profile, target, "cifar_resnet20", rounds=1)
    assert rows and {r["geometry"] for r in rows} <= set(profile.tables)
    # several widths per geometry (32 channels: 8, 16, 24), and 0.75 of 16 rounds back to 16: no variant
    per_geometry = [sum(r["geometry"] == g for r in rows) for g in {r["geometry"] for r in rows}]
    assert max(per_geometry) == 3 and min(per_geometry) >= 1 and len({r["variant"] for r in rows}) == len(rows)
    assert all(r["measured_ratio"] > 0 for r in rows)
    # geometries whose table saves nothing at these widths have nothing to scale; the rest are fitted
    scales = profile.width_scale["cifar_resnet20"]["scales"]
    assert scales and set(scales) <= set(profile.tables) and all(0.0 <= v <= 3.0 for v in scales.values())
    assert len(profile.width_scale["cifar_resnet20"]["dense"]) == 20  # 19 convs and the classifier
    assert profile.calibration["cifar_resnet20"].points  # refitted on its stored points


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
        profile.predict(collect_layers(create_model("cifar_vgg16"), (1, 3, 32, 32)))


def test_budget_exceeded_keeps_partial_and_never_writes_the_profile(tmp_path, monkeypatch):
    monkeypatch.setattr(profiler, "GRID_FRACTIONS", (1.0,))
    monkeypatch.setattr(profiler, "SCAN", {"span": 0, "step": 2})
    monkeypatch.setattr(profiler, "MICRO_TIMING", {"warmup": 0, "repeats": 1, "rounds": 1})
    good = tmp_path / "p.json"
    good.write_text("GOOD")
    clock = iter(range(0, 10_000, 100))
    monkeypatch.setattr(profiler.time, "monotonic", lambda: next(clock))
    with pytest.raises(profiler.ProfileBudgetExceeded, match="rerun to resume"):
        profiler.profile_target(load_target("cpu-ort"), ["cifar_resnet20"], good, budget_s=150, progress=False)
    assert good.read_text() == "GOOD"
    partial = json.loads(good.with_suffix(".partial.json").read_text())
    assert 1 <= len(partial["tables"]) < 6  # some tables done, kept for the resumed run


def test_cli_profile_errors():
    runner = CliRunner()
    out = runner.invoke(main, ["profile", "no-such-target", "--model", "cifar_resnet20"])
    assert out.exit_code == 1 and "unknown target" in out.output
    out = runner.invoke(main, ["profile", "cuda-torch-fp16", "--model", "cifar_resnet20", "--out", "/tmp/x.json"])
    assert out.exit_code == 1 and "cannot run here" in out.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = runner.invoke(main, ["profile", "cpu-ort", "--model", "cifar_resnet20", "--check", "2",
                                   "--out", "/nonexistent/p.json"])
    assert out.exit_code == 1 and "cannot read profile" in out.output


def test_kit_round_trip_without_torch(tmp_path, monkeypatch):
    """kit -> the kit's own collect.py in a process where torch and edgeprune cannot be imported -> import."""
    import subprocess
    import sys

    from edgeprune.latency.kit import import_result, write_kit

    monkeypatch.setattr(profiler, "GRID_FRACTIONS", (0.5, 1.0))
    monkeypatch.setattr(profiler, "SCAN", {"span": 0, "step": 2})
    monkeypatch.setattr(profiler, "CALIBRATION_RATIOS", (0.0, 0.5))
    monkeypatch.setattr(profiler, "CALIBRATION_RANDOM", 1)
    monkeypatch.setattr("edgeprune.latency.kit.MICRO_TIMING", {"warmup": 1, "repeats": 2, "rounds": 1})
    target = profiler.replace(load_target("cpu-ort"), warmup=1, repeats=3, rounds=1)
    kit = write_kit(target, ["cifar_resnet20"], tmp_path / "kit")
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
    assert all(p["measured_ratio"] > 0 for p in points) and points[0]["label"] == "uniform-0.0"
    layers = collect_layers(create_model("cifar_resnet20"), (1, 3, 32, 32))
    assert profile.predict(layers, "cifar_resnet20").ms > 0
    runner = CliRunner()
    result = str(kit / "result.json")
    out = runner.invoke(main, ["profile", "cpu-ort", "--import", result, "--out", str(tmp_path / "p.json")])
    assert out.exit_code == 0, out.output
    assert Profile.load(tmp_path / "p.json").tables.keys() == profile.tables.keys()
    out = runner.invoke(main, ["profile", "cpu-torch", "--import", result, "--out", str(tmp_path / "q.json")])
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


def test_torch_target_profiles_with_torch_micro_models(tmp_path, monkeypatch):
    monkeypatch.setattr(profiler, "GRID_FRACTIONS", (0.5, 1.0))
    monkeypatch.setattr(profiler, "SCAN", {"span": 2, "step": 2})
    monkeypatch.setattr(profiler, "MICRO_TIMING", {"warmup": 1, "repeats": 2, "rounds": 1})
    monkeypatch.setattr(profiler, "CALIBRATION_RATIOS", (0.0, 0.5))
    monkeypatch.setattr(profiler, "CALIBRATION_RANDOM", 1)
    target = profiler.replace(load_target("cpu-torch"), warmup=1, repeats=3, rounds=1)
    profile = profiler.profile_target(target, ["cifar_resnet20"], tmp_path / "t.json", progress=False)
    assert profile.target["backend"] == "torch" and len(profile.tables) == 6
    assert profile.predict(collect_layers(create_model("cifar_resnet20"), (1, 3, 32, 32)), "cifar_resnet20").ms > 0


def test_lookup_variant_is_chosen_by_calibration_residual(tiny_profile):
    _, _, profile = tiny_profile
    assert (profile.channel_block, profile.use_scan) in profiler.LOOKUP_CHOICES
    points = profile.calibration["cifar_resnet20"].points
    assert {p["label"] for p in points} >= {"uniform-0.0", "random-0"} and all(p["layers"] for p in points)


def test_calibration_points_are_ratios_to_the_dense_model_timed_beside_them(monkeypatch):
    """The machine slows 3x halfway through: points timed one after the other would bend the line; points
    taken as ratios to the dense session beside them do not."""
    monkeypatch.setattr(profiler, "CALIBRATION_RATIOS", (0.0, 0.5))
    monkeypatch.setattr(profiler, "CALIBRATION_RANDOM", 1)
    slow = [1.0, 1.0, 3.0]  # the dense model's ms in each pair: the machine slowed for the last one

    def fake_pairs(target, models, shape, passes=1, desc=""):
        assert len(models) == 4 and models[0] is models[1]  # [dense, dense as uniform-0.0, 0.5, random-0]
        return [[(d, d * ratio) for d, ratio in zip(slow, (1.0, 0.5, 0.8))]]

    monkeypatch.setattr(profiler, "measure_variants", fake_pairs)
    points = profiler.calibration_points(load_target("cpu-ort"), "cifar_resnet20")
    assert [p["label"] for p in points] == ["uniform-0.0", "uniform-0.5", "random-0"]
    assert [p["measured_ratio"] for p in points] == pytest.approx([1.0, 0.5, 0.8])
    assert [p["measured_ms"] for p in points] == pytest.approx([1.0, 0.5, 0.8])  # x the median dense ms, 1.0
    assert points[2]["dense_ms"] == 3.0


def test_recalibrate_keeps_the_tables_and_refits_the_line(tiny_profile, tmp_path, monkeypatch):
    target, path, profile = tiny_profile
    monkeypatch.setattr(profiler, "CALIBRATION_RATIOS", (0.0, 0.5))
    monkeypatch.setattr(profiler, "CALIBRATION_RANDOM", 1)
    copy = tmp_path / "p.json"
    copy.write_text(path.read_text())
    fast = replace(target, repeats=2, rounds=2)
    monkeypatch.setattr("edgeprune.targets.load_target", lambda name, *a, **k: fast)
    out = CliRunner().invoke(main, ["profile", "cpu-ort", "--model", "cifar_resnet20", "--recalibrate",
                                    "--out", str(copy)])  # fmt: skip
    assert out.exit_code == 0, out.output
    again = Profile.load(copy)
    assert {k: vars(t) for k, t in again.tables.items()} == {k: vars(t) for k, t in profile.tables.items()}
    points = again.calibration["cifar_resnet20"].points
    assert all("measured_ratio" in p for p in points) and again.settings["end_to_end"]["rounds"] == 2
    before = copy.read_text()
    out = CliRunner().invoke(main, ["profile", "cpu-ort", "--model", "cifar_vgg16", "--recalibrate",
                                    "--out", str(copy)])  # fmt: skip
    assert out.exit_code == 1 and "never measured" in out.output and copy.read_text() == before
    other = replace(fast, threads=fast.threads + 1)
    with pytest.raises(ProfileError, match="another cpu-ort set-up"):
        profiler.recalibrate_profile(again, other, ["cifar_resnet20"])


def test_channel_block_rounds_up_within_the_measured_range():
    t = Table([8, 16, 24], [8, 16, 24], [[1, 2, 3], [2, 3, 4], [3, 4, 5]], [[0] * 3] * 3)
    assert t.lookup(9, 8, use_scan=False, block=8)[0] == t.lookup(16, 8, use_scan=False)[0]
    assert t.lookup(24, 24, use_scan=False, block=16)[0] == t.lookup(24, 24, use_scan=False)[0]  # capped at the top


def test_kernel_time_per_run_leaves_out_reorders_and_session_overhead():
    from edgeprune.backends.onnxruntime import kernel_ms_per_run

    def node(name, op, ts, dur):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    def run(ts, dur):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}

    events = [
        node("ReorderInput", "ReorderInput", 10, 300), node("out_nchwc", "Conv", 310, 2000),
        node("ReorderOutput", "ReorderOutput", 2310, 400), run(5, 3000),
        node("FusedConv_2", "FusedConv", 5010, 700), run(5000, 900),
        node("late", "Conv", 9000, 50),  # outside every run (e.g. a run left unfinished): ignored
    ]  # fmt: skip
    assert kernel_ms_per_run(events) == [2.0, 0.7]


def test_kernel_layer_timing_is_an_option_for_cpu_onnxruntime_only():
    assert profiler.profile_settings(load_target("cpu-ort"))["layer_timing"] == "wall"
    assert profiler.layer_timing(load_target("cpu-ort"), "kernel") == "kernel"
    with pytest.raises(ProfileError, match="kernel timing needs onnxruntime on CPU"):
        profiler.layer_timing(load_target("cuda-ort"), "kernel")  # GPU node events are launch times
    with pytest.raises(ProfileError, match="wall' or 'kernel"):
        profiler.layer_timing(load_target("cpu-ort"), "cycles")


def test_kernel_timed_micro_model_runs(tmp_path):
    g = Geometry("conv", 1, 16, 16, 3, 1, 0)
    ms, spread = profiler._time_layer(load_target("cpu-ort"), g, 16, 16, tmp_path, "kernel")
    assert ms > 0 and spread >= 0


def test_misalignment_term_is_charged_off_the_blocking_and_fitted_by_calibration(tiny_profile):
    import copy

    from edgeprune.latency.profile import activation_mb

    _, path, fitted = tiny_profile
    profile = copy.deepcopy(fitted)
    profile.misalign = {}
    layer = next(x for x in collect_layers(create_model("cifar_resnet20"), (1, 3, 32, 32)) if x.cin == x.cout == 16)
    plain = {c: profile.layer_ms(layer, c, 16)[0] for c in (16, 12)}
    profile.misalign = {"align": 16, "ms_per_mb": 0.1, "ms_per_layer": 0.01}
    assert profile.layer_ms(layer, 16, 16)[0] == plain[16]  # on the blocking: no extra
    extra = 0.1 * activation_mb(layer.geometry, 12, 16) + 0.01
    assert profile.layer_ms(layer, 12, 16)[0] == pytest.approx(plain[12] + extra)
    # Calibration runs that do pay such a term: the chooser finds it again (block, scans fixed).
    profile.misalign = {}
    points = {name: [{k: q[k] for k in ("label", "layers", "measured_ms")} for q in cal.points]
              for name, cal in fitted.calibration.items()}  # fmt: skip
    for pts in points.values():
        for q in pts:
            ls = [profiler.Layer(f"l{i}", Geometry.from_key(k), ci, co) for i, (k, ci, co) in enumerate(q["layers"])]
            truth = {"align": 8, "ms_per_mb": 0.2, "ms_per_layer": 0.0}
            profile.misalign = truth
            q["measured_ms"] = 2.0 * profile.predict_layers(ls)[0] + 0.3
            profile.misalign = {}
    mp = pytest.MonkeyPatch()
    mp.setattr(profiler, "LOOKUP_CHOICES", [(profile.channel_block, profile.use_scan)])
    try:
        profiler.choose_lookup_and_calibrate(profile, points)
    finally:
        mp.undo()
    assert profile.misalign == truth
    cal = profile.calibration["cifar_resnet20"]
    assert cal.scale == pytest.approx(2.0) and cal.offset_ms == pytest.approx(0.3)
    assert Profile.from_dict(profile.to_dict()).misalign == truth
    with pytest.raises(ProfileError, match="misalign"):
        Profile.from_dict({**profile.to_dict(), "misalign": {"align": 8}})


def test_a_divisor_of_the_blocking_is_not_misaligned():
    conv = Geometry.from_key("conv|b1|32x32|k3|s1|gw0|fp32")
    assert not misaligned(conv, 4, 16, 8) and not misaligned(conv, 16, 24, 8)  # 4 divides 8; 24 is 3 blocks
    assert misaligned(conv, 12, 16, 8) and misaligned(conv, 16, 6, 8)
    assert not misaligned(Geometry.from_key("linear|b1|1x1|k1|s1|gw0|fp32"), 12, 10, 8)  # linears are not blocked
