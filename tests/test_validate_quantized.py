"""validate on int8 targets: the deployed (quantized) artifact's accuracy and size, the pruning and quantization
drops apart, and the speedup over the dense fp32 model on the same runtime beside the gated one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.errors import InputError
from edgeprune.report import markdown, speed_warnings
from edgeprune.targets import load_target, target_from_dict
from edgeprune.train import data
from edgeprune.validation import ModelRef, resolve_model, validate

FAST = {"precision": "int8", "threads": 1, "warmup": 1, "repeats": 2, "rounds": 2, "calibration_count": 64}


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "pruned"
    result = CliRunner().invoke(main, ["shrink", "cifar_resnet20", "--ratio", "0.3", "--pretrained", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize(
    "backend", ["onnxruntime", "openvino", pytest.param("executorch", marks=pytest.mark.executorch)]
)
def test_validate_measures_the_quantized_artifact(backend, pruned_dir, tmp_path, monkeypatch):
    x, y = data.load_lossless_subset("test")
    monkeypatch.setattr(data, "load_lossless_subset", lambda split="test", data_dir=None: (x[:300], y[:300]))  # faster
    # ExecuTorch's threadpool is one per process: its tests keep the shipped targets' size, so it is never
    # reset under programs that other tests in this worker loaded
    threads = {"threads": load_target("cpu-xnnpack").threads} if backend == "executorch" else {}
    target = target_from_dict(f"fast-{backend}-int8", {"backend": backend, **FAST, **threads})
    report = validate(resolve_model("cifar_resnet20", pretrained=True), resolve_model(str(pruned_dir)), target,
                      tmp_path / "v", data="cifar10-lossless")  # fmt: skip
    a, b, d = report["original"], report["pruned"], report["derived"]
    for side in (a, b):
        assert side["calibration"] == {"data": "cifar10-lossless", "count": 64, "kind": "images"}
        # the quantized file is what was measured: much smaller than the fp32 export
        assert side["memory"]["deployed_file_bytes"] < 0.6 * side["memory"]["model_file_bytes"]
        assert side["memory"]["runtime_mb"] > 0
    assert a["accuracy"] > 0.9 and abs(a["deployed_accuracy"] - a["accuracy"]) < 0.02  # int8 keeps the trained model
    assert d["quantization_delta_points"] == pytest.approx(100 * (b["deployed_accuracy"] - b["accuracy"]))
    assert d["accuracy_delta_points"] == pytest.approx(100 * (b["accuracy"] - a["accuracy"]))
    assert d["deployed_delta_points"] == pytest.approx(d["accuracy_delta_points"] + d["quantization_delta_points"])
    lo, hi = d["speedup_over_fp32_ci"]
    assert lo <= d["speedup_over_fp32"] <= hi and len(a["latency_fp32"]["round_medians_ms"]) == 2
    assert "latency_fp32" not in b and report["warnings"] == speed_warnings(report)
    # ExecuTorch's sessions and OpenVINO's spells vary: timed in a second session too (a third where they differ)
    settled = backend in ("executorch", "openvino")
    assert len(report["session_speedups"]) in ((2, 3) if settled else (1,))
    assert d["measured_speedup"] in report["session_speedups"]
    assert ("sessions of each model" in markdown(report)) == settled
    # the pruned model's file as measured, beside the report, as large as the one measured
    suffix = {"onnxruntime": ".onnx", "openvino": ".xml", "executorch": ".pte"}[backend]
    shipped = tmp_path / "v" / f"deployed{suffix}"
    assert report["deployed_files"][-1] == str(shipped) and sum(
        Path(f).stat().st_size for f in report["deployed_files"]) == b["memory"]["deployed_file_bytes"]  # fmt: skip
    size = f"| deployed file (what the runtime loads) | {a['memory']['deployed_file_bytes'] / 1e6:.2f} MB |"
    assert size in markdown(report)
    convs = {n for n, m in resolve_model("cifar_resnet20").module.named_modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}  # fmt: skip
    for side in (a, b):  # per-layer times from each runtime's own profiler: every conv and linear has its row
        assert convs <= set(side["ms_by_layer"]), side["ms_by_layer"]
        total = sum(side["ms_by_layer"].values())
        assert total == pytest.approx(sum(side["ms_by_op"].values())) and total > 0
    if backend == "onnxruntime":  # per-layer times of the quantized model, its convolutions attributed
        assert "QLinearConv" in a["ms_by_op"] and "layer1.0.conv1" in a["ms_by_layer"]
        # the int8 convolutions are credited with the convolutions' MACs (nearly all of ResNet-20's), not none
        row = next(line for line in markdown(report).splitlines() if line.startswith("| QLinearConv |"))
        assert float(row.split("|")[5].strip().rstrip("%")) > 90


def test_validate_refuses_calibration_data_for_a_float_target():
    r = CliRunner().invoke(main, ["validate", "a", "b", "--target", "cpu-ort", "--calibration-data", "cifar10",
                                  "--out", "o"])  # fmt: skip
    assert r.exit_code == 2 and "--calibration-data cannot be used with cpu-ort, which is not int8" in r.output


def test_validate_refuses_a_detector_with_data_that_is_not_a_dataset_yaml(tmp_path):
    """Top-1 of a detector's raw outputs means nothing: --data must be a dataset yaml for it, and the refusal comes
    before anything is built or written."""
    out = tmp_path / "v"
    r = CliRunner().invoke(main, ["validate", "ultralytics:yolov8n.yaml", str(tmp_path / "pruned"), "--target",
                                  "cpu-ort", "--data", str(tmp_path), "--out", str(out)])  # fmt: skip
    assert r.exit_code == 2 and "is an Ultralytics detector: --data must be a dataset yaml" in r.output
    assert not out.exists()


@pytest.mark.parametrize(("name", "data", "says"), [
    ("ultralytics:yolov8n.yaml", "images", "is an Ultralytics detector: --data must be a dataset yaml"),
    ("cifar_resnet20", "coco.yaml", "is a detection dataset yaml: MODEL must be an Ultralytics detector")])
def test_validate_from_python_refuses_data_of_the_other_kind_before_writing(tmp_path, name, data, says):
    """The library call refuses as the command does, before any model is exported or anything written."""
    ref = ModelRef(name, name, torch.nn.Identity(), (3, 32, 32))
    with pytest.raises(InputError, match=says):
        validate(ref, ref, load_target("cpu-ort"), tmp_path / "v", data=str(tmp_path / data))
    assert not (tmp_path / "v").exists()


def test_validate_calibration_count_overrides_the_target_and_a_short_set_names_the_count(tmp_path):
    r = CliRunner().invoke(main, ["validate", "cifar_resnet20", "cifar_resnet20", "--target", "cpu-ort-int8",
                                  "--calibration-data", "synthetic", "--calibration-count", "257",
                                  "--out", str(tmp_path / "v")])  # fmt: skip
    assert r.exit_code == 1, r.output
    assert "needs 257 images but synthetic's train split has 256" in r.output and "--calibration-count" in r.output
    assert not (tmp_path / "v" / "report.json").exists()
    r = CliRunner().invoke(main, ["validate", "a", "b", "--target", "cpu-ort", "--calibration-count", "10",
                                  "--out", "o"])  # fmt: skip
    assert r.exit_code == 2 and "--calibration-count cannot be used with cpu-ort" in r.output


def _int8_report(dense_int8_ms: float, dense_fp32_ms: float, pruned_ms: float) -> dict:
    def side(ms: float) -> dict:
        return {"model": "m", "macs": 2e6, "params": 1e3, "predicted_ms": None, "export_notes": [],
                "latency": {"median_ms": ms, "p90_ms": ms, "round_medians_ms": [ms], "spread_pct": 1.0},
                "memory": {"weight_bytes": 1e3, "largest_activation_bytes": 1e3}}  # fmt: skip

    a, b = side(dense_int8_ms), side(pruned_ms)
    a["latency_fp32"] = side(dense_fp32_ms)["latency"]
    a["latency"]["round_medians_ms"] = [dense_int8_ms * f for f in (0.95, 1.0, 1.05, 1.0)]
    a["latency_fp32"]["round_medians_ms"] = [dense_fp32_ms * f for f in (1.0, 0.95, 1.0, 1.05)]
    over = dense_fp32_ms / pruned_ms
    d = {"macs_speedup": 2.0, "params_reduction": 2.0, "measured_speedup": dense_int8_ms / pruned_ms,
         "predicted_speedup": None, "weight_memory_reduction": 2.0, "realization": 0.5,
         "speedup_over_fp32": over, "speedup_over_fp32_ci": [0.95 * over, 1.05 * over]}  # fmt: skip
    return {"target": "cpu-openvino-int8", "target_spec": {"precision": "int8"}, "original": a, "pruned": b,
            "derived": d, "gate": {"passed": True, "reason": "no profile given: speedup not gated"}}  # fmt: skip


def test_the_report_shows_the_dense_fp32_model_and_warns_where_int8_loses_speed():
    # int8 pays: the fp32 row and its ratio are there, no warning
    text = markdown(_int8_report(dense_int8_ms=4.0, dense_fp32_ms=8.0, pruned_ms=2.0))
    assert "| measured latency, median, dense fp32 (the original unquantized) | 8 ms |  | pruned over it: 4.00x" in text
    assert "Warning" not in text
    # quantizing slows the dense model, yet the pruned int8 model still beats dense fp32
    slow = _int8_report(dense_int8_ms=6.4, dense_fp32_ms=5.9, pruned_ms=4.3)
    (warning,) = speed_warnings(slow)
    assert "quantizing slows the dense model on cpu-openvino-int8: int8 6.4 ms against fp32 5.9 ms" in warning
    assert "slower in 4 of 4 rounds" in warning and f"**Warning:** {warning}." in markdown(slow)
    # slower by the medians, but not in three rounds of four: within the noise, no warning
    level = _int8_report(dense_int8_ms=6.0, dense_fp32_ms=5.9, pruned_ms=4.3)
    level["original"]["latency"]["round_medians_ms"] = [5.5, 6.0, 6.1, 5.6]
    level["original"]["latency_fp32"]["round_medians_ms"] = [5.9, 5.9, 5.9, 5.9]
    assert not speed_warnings(level)
    # the pruned int8 model is slower than dense fp32: a second warning
    worse = speed_warnings(_int8_report(dense_int8_ms=12.0, dense_fp32_ms=6.0, pruned_ms=8.0))
    assert len(worse) == 2 and "the pruned int8 model runs slower than the dense fp32 one" in worse[1]
    # an fp32 target has no such row or warning
    fp32 = _int8_report(4.0, 8.0, 2.0)
    del fp32["original"]["latency_fp32"]
    assert not speed_warnings(fp32) and "dense fp32" not in markdown(fp32)
    # on any target: a pruned model slower than the original, its whole interval below 1
    fp32["derived"].update(measured_speedup=0.9, speedup_ci=[0.85, 0.95])
    assert speed_warnings(fp32) == ["the pruned model runs slower than the original on cpu-openvino-int8 (0.90x)"]
    fp32["derived"]["speedup_ci"] = [0.85, 1.02]  # within the noise of 1: no warning
    assert not speed_warnings(fp32)


def test_a_prediction_that_priced_in_int8_layers_left_in_fp32_is_flagged():
    """With --int8-layers measured, a deployed model can leave layers in fp32 that the int8 profile priced in
    int8: the report says the predicted speedup is not that model's."""
    report = _int8_report(dense_int8_ms=4.0, dense_fp32_ms=8.0, pruned_ms=2.0)
    report["pruned"]["int8_layers"] = {"fp32_nodes": 3, "nodes": 50, "fp32_groups": ["part 1"]}
    assert not speed_warnings(report)  # no profile, no prediction to flag
    report["derived"]["predicted_speedup"] = 2.1
    (warning,) = speed_warnings(report)
    assert warning == ("the profile priced every layer in int8, but the deployed models leave layers in fp32 "
                       "(pruned: 3 of 50 nodes (part 1)): the predicted speedup is not theirs")
    report["pruned"]["int8_layers"]["fp32_nodes"] = 0  # the search kept every layer in int8
    assert not speed_warnings(report)


def test_validate_prints_the_warnings(monkeypatch, tmp_path):
    import edgeprune.validation as validation

    report = _int8_report(dense_int8_ms=6.4, dense_fp32_ms=5.9, pruned_ms=4.3)
    report["warnings"] = speed_warnings(report)  # as validate() records them
    monkeypatch.setattr(validation, "resolve_pair", lambda *args: (None, None))
    monkeypatch.setattr(validation, "validate", lambda *args, **kwargs: report)
    r = CliRunner().invoke(main, ["validate", "a", "b", "--target", "cpu-openvino-int8", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "int8: pruned 1.37x faster than the dense fp32 model\nWARNING: quantizing slows the dense model" in r.output


def test_a_backend_whose_sessions_vary_is_timed_in_fresh_sessions_until_two_agree(monkeypatch):
    """One slow session sets no speedup: a second session of each model, a third when the two differ by over
    10 %, and the timing of the median speedup is kept (of two that agree, the lower one). A backend that cannot
    reload a session is timed once."""
    from edgeprune import validation
    from edgeprune.timing import Ratio, Timing

    speedups = iter([2.0, 1.5, 1.9, 2.0, 1.95, 3.0])  # the sessions' speedups, in the order they are timed
    timed, reloaded = [], []

    def fake_time(runners, x, target, reference=None):
        timed.append(dict(runners))
        s = next(speedups)
        return Timing({}, reference, {"original": Ratio(s, s, s, 1)})

    class Reloads:
        def reload(self, target, runner):
            reloaded.append(runner)
            return f"{runner}, again"

    monkeypatch.setattr(validation, "time_runners", fake_time)
    monkeypatch.setattr(validation, "get_backend", lambda name: Reloads())
    runners, target = {"original": "a", "pruned": "b"}, load_target("cpu-xnnpack")
    kept, sessions = validation.time_sessions(target, runners, None)
    assert sessions == [2.0, 1.5, 1.9] and kept.ratios["original"].median == 1.9  # 2.0 and 1.5 disagree: a third
    assert timed[1] == {"original": "a, again", "pruned": "b, again"} and len(reloaded) == 4
    kept, sessions = validation.time_sessions(target, runners, None)
    assert sessions == [2.0, 1.95] and kept.ratios["original"].median == 1.95  # they agree: no third
    monkeypatch.setattr(validation, "get_backend", lambda name: object())  # no reload
    kept, sessions = validation.time_sessions(target, runners, None)
    assert sessions == [3.0] and len(timed) == 6
