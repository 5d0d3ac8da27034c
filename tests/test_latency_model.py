"""The latency model by hand: micro-models, table lookup, pricing a plan, blocking and misalignment, and
how a layer is timed (wall clock or the runtime's kernel time)."""

from __future__ import annotations

from dataclasses import replace

import onnxruntime as ort
import pytest
from torch import nn

from edgeprune.latency import (
    Geometry,
    Profile,
    ProfileError,
    collect_layers,
    innet,
    profiler,
    tables,
)
from edgeprune.latency.costs import make_cost
from edgeprune.latency.layers import Layer
from edgeprune.latency.micro import input_for, micro_model
from edgeprune.latency.model import LatencyModel, misaligned
from edgeprune.latency.profile import Calibration, Table
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


def two_layer_profile(calibration: Calibration | None = None, **fields) -> tuple[Profile, list]:
    """Two convs with hand-made tables: "a" costs 4 ms dense, "b" 2 ms."""
    ga, gb = Geometry.from_key("conv|b1|8x8|k3|s1|gw0|fp32"), Geometry.from_key("conv|b1|4x4|k1|s1|gw0|fp32")
    tables = {ga.key: Table([4, 8], [4, 8], [[1.0, 2.0], [3.0, 4.0]], [[0, 0], [0, 0]]),
              gb.key: Table([4, 8], [4, 8], [[0.5, 1.0], [1.0, 2.0]], [[0, 0], [0, 0]])}  # fmt: skip
    cal = {"net": calibration} if calibration else {}
    dense = [Layer("a", ga, 8, 8), Layer("b", gb, 8, 8)]
    return Profile({"name": "t"}, {}, {}, tables, cal, **fields), dense


def test_the_latency_model_prices_a_plan_as_computed_by_hand():
    # scale 2 and offset 1 ms, fitted on the two-layer model: each layer carries 1 / 2 / 2 = 0.25 of the offset
    keys = ["conv|b1|8x8|k3|s1|gw0|fp32", "conv|b1|4x4|k1|s1|gw0|fp32"]
    profile, dense = two_layer_profile(Calibration(2.0, 1.0, [{"layers": [[k, 8, 8] for k in keys]}]))
    a, b = dense
    model = LatencyModel(profile, "net")
    pred = model.predict(dense)
    assert pred.per_layer == {"a": 4.25, "b": 2.25} and pred.ms == 2 * (4 + 2) + 1 and pred.calibrated
    narrowed = [replace(a, cout=4), replace(b, cin=4)]  # a 8->4 (3 ms), b 4->8 (1 ms)
    assert model.predict_pruned(dense, narrowed).ms == model.predict(narrowed).ms == 2 * (3 + 1) + 1
    # b's branch removed: it stops running and takes its share of the offset with it
    assert model.predict_pruned(dense, [a]).ms == 2 * 4 + 0.5
    # measured, removing it saves only a quarter of its cost: 3/4 of its term stays
    kept = LatencyModel(replace(profile, removal_scale={"net": {b.geometry.key: 0.25}}), "net")
    assert kept.predict_pruned(dense, [a]).ms == 2 * (4.25 + 0.75 * 2.25)
    assert kept.layer(b, 0, 8) == 0.75 * kept.layer(b, 8, 8)  # the planner's price of the same removal
    # another network (a layer the dense one lacks) is priced from its own layers
    other = [a, replace(b, path="c", cin=4)]
    assert model.predict_pruned(dense, other).ms == model.predict(other).ms == 2 * (4 + 1) + 1
    # without points the offset is a constant; without a line the layer ms add up plainly
    constant = LatencyModel(two_layer_profile(Calibration(2.0, 1.0))[0], "net")
    assert constant.predict(dense).ms == 13.0 and constant.predict_pruned(dense, [a]).ms == 2 * 4 + 1
    assert LatencyModel(profile, "another").predict(dense).ms == 6.0
    # the planner's latency cost is this model: its dense total is the prediction
    cost = make_cost("latency", profile, "net")
    assert cost.total(sum(cost.layer(x, x.cin, x.cout) for x in dense)) == pred.ms and cost.unit == "ms"


def test_below_its_lowest_run_a_line_with_a_negative_offset_is_floored_by_that_run_scaled():
    """MobileNet-V3-Large's line on this VM (1.21 x tables - 4.54 ms) priced its half-MACs plan at 3.83x where it
    ran 1.56x: below every calibration run the negative offset took the prediction towards zero."""
    (a, b), line = two_layer_profile()[1], Calibration(2.0, -4.0)
    ka, kb = a.geometry.key, b.geometry.key
    points = [{"layers": [[ka, 8, 8], [kb, 8, 8]]},  # dense: tables 4 + 2 ms
              {"layers": [[ka, 8, 4], [kb, 4, 8]]}]  # the lowest run: tables 3 + 1 ms  # fmt: skip
    profile = two_layer_profile(replace(line, points=points))[0]
    model = LatencyModel(profile, "net")
    assert model.predict([a, b]).ms == 2 * 6 - 4
    assert model.predict([replace(a, cout=4), replace(b, cin=4)]).ms == 2 * 4 - 4  # at the knee: the line
    below = [replace(a, cout=4), replace(b, cin=4, cout=4)]  # tables 3 + 0.5: the line says 3 ms
    assert model.predict(below).ms == pytest.approx(4 * 3.5 / 4)
    assert model.knee == (4.0, 2 * 4 - 4)  # (tables sum, line ms) of the lowest run
    # a positive offset already stays above the proportional floor: the line is kept
    positive = LatencyModel(two_layer_profile(Calibration(2.0, 1.0, points))[0], "net")
    assert positive.predict(below).ms == pytest.approx(2 * 3.5 + 1)
    # without recorded runs there is no knee, and the line stands
    assert LatencyModel(two_layer_profile(line)[0], "net").predict(below).ms == 2 * 3.5 - 4


def test_width_correction_misalignment_and_extrapolation_by_hand():
    profile, dense = two_layer_profile(misalign={"align": 8, "ms_per_mb": 0.0, "ms_per_layer": 0.1})
    a = dense[0]
    model = LatencyModel(profile.with_width_scales("net", {a.geometry.key: 0.5}, dense), "net")
    # a at 8 -> 4 (4 divides the blocking of 8): its table saves 1 ms, the model's width scale keeps half of it
    assert model.layer_ms(a, 8, 4) == (4 + 0.5 * (3 - 4), False)
    assert model.layer_ms(a, 6, 8) == (pytest.approx(4 + 0.5 * (3 - 4) + 0.1), False)  # 6 channels: off the blocking
    pred = LatencyModel(profile).predict([replace(a, cin=16)])  # past the grid: clamped to it, and flagged
    assert pred.ms == 4.0 and pred.extrapolated == ["a (16->8)"]


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
    assert tables.layer_timing(load_target("cpu-ort"), "kernel") == "kernel"
    with pytest.raises(ProfileError, match="kernel timing needs onnxruntime on CPU"):
        tables.layer_timing(load_target("cuda-ort"), "kernel")  # GPU node events are launch times
    with pytest.raises(ProfileError, match="wall' or 'kernel"):
        tables.layer_timing(load_target("cpu-ort"), "cycles")


def test_kernel_timed_micro_model_runs(tmp_path):
    g = Geometry("conv", 1, 16, 16, 3, 1, 0)
    ms, spread = tables._time_layer(load_target("cpu-ort"), g, 16, 16, tmp_path, "kernel")
    assert ms > 0 and spread >= 0


def test_a_divisor_of_the_blocking_is_not_misaligned():
    conv = Geometry.from_key("conv|b1|32x32|k3|s1|gw0|fp32")
    assert not misaligned(conv, 4, 16, 8) and not misaligned(conv, 16, 24, 8)  # 4 divides 8; 24 is 3 blocks
    assert misaligned(conv, 12, 16, 8) and misaligned(conv, 16, 6, 8)
    assert not misaligned(Geometry.from_key("linear|b1|1x1|k1|s1|gw0|fp32"), 12, 10, 8)  # linears are not blocked


def test_each_model_keeps_the_lookup_its_own_runs_chose():
    """Two models whose runs follow different lookups: each gets its own, and adding the second to a profile
    leaves the first one's lookup, line and predictions exactly as they were."""
    from edgeprune.latency.profiler import choose_lookup_and_calibrate

    profile, dense = two_layer_profile()
    a, b = dense
    widths = [(8, 8), (5, 8), (8, 6), (6, 5), (4, 4), (7, 4), (5, 5)]
    variants = [[replace(a, cout=ca), replace(b, cin=ca, cout=cb)] for ca, cb in widths]

    def runs(misalign: dict) -> list[dict]:  # what a runtime paying this term would measure: 2 ms per unit + 0.5
        model = LatencyModel(replace(profile, use_scan=False, misalign=misalign))
        return [{"label": f"p{i}", "layers": [[x.geometry.key, x.cin, x.cout] for x in ls],
                 "measured_ms": 2.0 * model.layers_ms(ls) + 0.5} for i, ls in enumerate(variants)]  # fmt: skip

    choices, term = [(1, False)], {"align": 8, "ms_per_mb": 0.0, "ms_per_layer": 0.05}
    alone = choose_lookup_and_calibrate(profile, {"x": runs({})}, choices)
    both = choose_lookup_and_calibrate(profile, {"x": runs({}), "y": runs(term)}, choices)
    assert both.lookup_for("x") == alone.lookup_for("x") == (1, False, {})
    assert both.lookup_for("y") == (1, False, term)
    assert both.calibration["x"].scale == pytest.approx(2.0) and both.calibration["y"].offset_ms == pytest.approx(0.5)
    assert [LatencyModel(both, "x").predict(v).ms for v in variants] == [
        LatencyModel(alone, "x").predict(v).ms for v in variants]  # fmt: skip
    assert both.lookup_for("not calibrated") == (both.channel_block, both.use_scan, both.misalign)
    # the file keeps them; a malformed entry names itself
    assert Profile.from_dict(both.to_dict()).lookups == both.lookups
    with pytest.raises(ProfileError, match=r"lookups\['y'\] needs channel_block"):
        Profile.from_dict({**both.to_dict(), "lookups": {"y": {"use_scan": True}}})


def test_an_unsteady_control_is_timed_again_with_new_sessions(monkeypatch):
    controls = iter([1.05, 0.96, 1.01])  # the control's ms over the dense model's, run by run
    runs = []

    def fake_time(target, models, shape, rounds):
        runs.append(list(models))
        return {**{k: 1.0 for k in models}, "control": next(controls)}

    monkeypatch.setattr(innet, "_time", fake_time)
    ms, control = innet.time_with_control(None, "m", nn.Identity(), {"v": None}, (1,), 1, tolerance=0.03)
    assert control == 1.01 and len(runs) == 3 and runs[0] == ["dense", "v", "control"]
    controls = iter([1.05, 0.96, 1.04])
    with pytest.raises(innet.UnsteadyMeasurement, match=r"\+5.0 %, -4.0 %, \+4.0 % apart in 3"):
        innet.time_with_control(None, "m", nn.Identity(), {"v": None}, (1,), 1, tolerance=0.03)


def test_a_stored_check_is_predicted_again_against_its_own_times():
    """Replaying a check with the profile that made it reproduces its errors; the formula lives in error_row."""
    from edgeprune.latency.check import check_variants, error_row, predicted_ms, replay_check, summarize
    from edgeprune.latency.profile import find_profile

    target = load_target("cpu-ort")
    profile = Profile.load(find_profile(target.name, target.backend), strict=False)
    _, layers = check_variants("cifar_resnet20", target, 3)
    pred = predicted_ms(profile, "cifar_resnet20", layers)
    # every plan timed 10 % slower than predicted, the dense model as predicted, over two passes
    rows = [error_row(p, pred[0], [1.1 * p, 1.1 * p], [pred[0], pred[0]]) for p in pred[1:]]
    report = {"model": "cifar_resnet20", "plans": rows, **summarize(rows, pred[0])}
    again = replay_check(profile, target, report)
    assert again["median_abs_speedup_error_pct"] == pytest.approx(10.0)
    assert again["plans"][0]["predicted_speedup"] == pytest.approx(rows[0]["predicted_speedup"])


def test_a_grouped_conv_with_several_filters_per_channel_is_profiled_along_its_inputs(monkeypatch, tmp_path):
    """FastViT downsamples with a 3x3 conv of two filters per input channel (48 -> 96, groups 48): profiling
    it was refused ("not profiled yet"), and with it any latency budget on the model."""
    net = nn.Sequential(nn.Conv2d(3, 48, 3), nn.Conv2d(48, 96, 3, groups=48), nn.Conv2d(96, 72, 1, groups=24))
    doubled, odd = collect_layers(net[:2], (1, 3, 16, 16))[1], collect_layers(net, (1, 3, 16, 16))[2]
    assert doubled.geometry.key == "gconv|b1|14x14|k3|s1|gw1m2|fp32" and doubled.geometry.multiplier == 2
    assert Geometry.from_key(doubled.geometry.key) == doubled.geometry
    assert Geometry.from_key("gconv|b1|8x8|k3|s1|gw4|fp32").multiplier == 1  # keys of older profiles read alike
    axes = tables.grid_axes([doubled])
    (cin_axis, cout_axis), = axes.values()
    assert cout_axis is None and cin_axis[-1] == 48
    timed = []
    monkeypatch.setattr(tables, "_time_layer", lambda t, g, ci, co, *a, **k: timed.append((ci, co)) or (1.0, 0.0))
    table = tables.measure_table(load_target("cpu-ort"), doubled.geometry.key, cin_axis, None, tmp_path)
    assert timed and all(co == 2 * ci for ci, co in timed) and table.cout is None
    model = micro_model(doubled.geometry, 48, 96)  # the micro-model runs at those widths
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"input": input_for(doubled.geometry, 48)})[0].shape[1] == 96
    with pytest.raises(ProfileError, match=r"grouped conv with 96 -> 72 channels \(not a whole number"):
        tables.grid_axes([odd])
