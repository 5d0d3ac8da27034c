"""Export command, validation against the original, gating exit codes, and report rebuilding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.export import ExportError, check_onnx, export_onnx
from edgeprune.models import create_model
from edgeprune.targets import target_from_dict
from edgeprune.timing import Ratio
from edgeprune.validation import NumericsFailure, derive, gate_speedup, resolve_model, validate

CONV_OR_LINEAR = (torch.nn.Conv2d, torch.nn.Linear)
FAST_ORT = {"backend": "onnxruntime", "threads": 1, "warmup": 2, "repeats": 5, "rounds": 2}

PROFILE = Path(__file__).resolve().parents[1] / "edgeprune" / "resources" / "profiles" / "cpu-ort--amd-epyc-2c.json"


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "pruned"
    result = CliRunner().invoke(main, ["shrink", "cifar_resnet20", "--ratio", "0.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_export_command_and_numerics_check(tmp_path, pruned_dir):
    out = CliRunner().invoke(main, ["export", str(pruned_dir), "--out", str(tmp_path / "m.onnx")])
    assert out.exit_code == 0, out.output
    assert "dynamo exporter" in out.output and "dynamic batch" in out.output
    model = resolve_model(str(pruned_dir)).module
    assert check_onnx(model, tmp_path / "m.onnx", torch.randn(4, 3, 32, 32)) <= 1e-4


def test_numerics_mismatch_is_an_error(tmp_path):
    model = create_model("cifar_resnet20").eval()
    export_onnx(model, torch.randn(1, 3, 32, 32), tmp_path / "m.onnx")
    with torch.no_grad():
        model.linear.bias.add_(1.0)  # the torch model no longer matches the file
    with pytest.raises(ExportError, match="relative error"):
        check_onnx(model, tmp_path / "m.onnx", torch.randn(2, 3, 32, 32))


def test_validate_report_contents(tmp_path, pruned_dir):
    target = target_from_dict("fast-ort", FAST_ORT)
    report = validate(resolve_model("cifar_resnet20"), resolve_model(str(pruned_dir)), target, tmp_path / "v")
    a, b, d = report["original"], report["pruned"], report["derived"]
    assert a["macs"] > b["macs"] > 0 and a["params"] > b["params"]
    assert d["macs_speedup"] == pytest.approx(a["macs"] / b["macs"])
    assert d["realization"] == pytest.approx(d["measured_speedup"] / d["macs_speedup"])
    lo, hi = d["speedup_ci"]  # the paired speedup's interval over the two rounds brackets it
    assert 0 < lo <= d["measured_speedup"] <= hi
    assert a["numerics_rel_err"]["random"] <= 1e-4 and b["latency"]["median_ms"] > 0
    assert "Conv" in a["ms_by_op"] and a["memory"]["weight_bytes"] > b["memory"]["weight_bytes"]
    assert report["gate"]["passed"] and "not gated" in report["gate"]["reason"]
    files = {p.name for p in (tmp_path / "v").iterdir()}
    assert {"report.json", "report.md", "speedups.png", "latency_by_layer.png"} <= files
    # Per layer: every conv/linear has its own measured time, and the attributed times add up to the total.
    convs = {n for n, m in resolve_model("cifar_resnet20").module.named_modules() if isinstance(m, CONV_OR_LINEAR)}
    for side in (a, b):
        assert convs <= {k for k, v in side["ms_by_layer"].items() if v > 0}
        assert not [k for k in side["ms_by_layer"] if k.startswith("(unattributed)")]
        assert sum(side["ms_by_layer"].values()) == pytest.approx(sum(side["ms_by_op"].values()))
        assert set(side["macs_by_layer"]) == convs  # fvcore's total also counts BatchNorm and pooling:
        assert 0.95 * side["macs"] < sum(side["macs_by_layer"].values()) <= side["macs"]
    assert "per layer" in (tmp_path / "v" / "report.md").read_text()
    assert json.loads((tmp_path / "v" / "report.json").read_text())["schema"] == "edgeprune.report/1"


def test_gate_uses_the_predicted_speedup():
    a = {"macs": 100, "params": 10, "latency": {"median_ms": 10.0}, "predicted_ms": 10.0,
         "memory": {"weight_bytes": 40}}
    b = {"macs": 50, "params": 5, "latency": {"median_ms": 8.0}, "predicted_ms": 5.0,
         "memory": {"weight_bytes": 20}}
    d = derive(a, b)
    assert d["predicted_speedup"] == 2.0 and d["measured_speedup"] == 1.25 and d["realization"] == 0.625
    gate = gate_speedup(d, 0.15)  # 1.25x measured against 2.00x predicted less 15 %: a 1.70x floor
    assert not gate["passed"] and "falls short of 2.00x (predicted) within 15% (floor 1.70x)" in gate["reason"]
    assert gate_speedup(d, 0.4)["passed"]  # a 1.20x floor
    unpredicted = gate_speedup(derive({**a, "predicted_ms": None}, b), 0.15)
    assert unpredicted["passed"] and "not gated" in unpredicted["reason"]
    assert "speedup_ci" not in d
    d = derive(a, b, Ratio(1.3, 1.2, 1.4, 5))  # paired round by round: that speedup, with its interval
    assert d["measured_speedup"] == 1.3 and d["speedup_ci"] == [1.2, 1.4] and d["realization"] == 0.65


def test_gate_holds_a_plan_measured_while_planning_to_that_measurement():
    derived = {"measured_speedup": 1.25, "predicted_speedup": 1.6}
    assert not gate_speedup(derived, 0.15)["passed"]  # the prediction was off, as measuring the plan showed
    gate = gate_speedup(derived, 0.15, expected_speedup=1.3)
    assert gate["passed"] and "1.30x (measured while planning)" in gate["reason"]
    assert not gate_speedup(derived, 0.02, expected_speedup=1.3)["passed"]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_validate_on_openvino_times_every_layer_with_its_own_counters(tmp_path, pruned_dir, precision):
    """OpenVINO's per-node counters, attributed to module paths through the ONNX export's node names (the int8
    IR keeps them, with suffixes): every conv/linear has its time, the rows add up to the ops'. In fp32 nothing is
    left unattributed; in int8 only nodes with no ONNX name behind them (the input's quantization)."""
    target = target_from_dict("fast-ov", {**FAST_ORT, "backend": "openvino", "precision": precision,
                                          "calibration_count": 8})  # fmt: skip
    report = validate(resolve_model("cifar_resnet20"), resolve_model(str(pruned_dir)), target, tmp_path / "v")
    convs = {n for n, m in resolve_model("cifar_resnet20").module.named_modules() if isinstance(m, CONV_OR_LINEAR)}
    for side in (report["original"], report["pruned"]):
        assert convs <= {k for k, v in side["ms_by_layer"].items() if v > 0}
        unattributed = sum(v for k, v in side["ms_by_layer"].items() if k.startswith("(unattributed)"))
        total = sum(side["ms_by_layer"].values())
        assert unattributed == 0 if precision == "fp32" else unattributed < 0.15 * total, side["ms_by_layer"]
        assert total == pytest.approx(sum(side["ms_by_op"].values())) and total > 0
    assert "per layer" in (tmp_path / "v" / "report.md").read_text()


def test_validate_numerics_failure_exit_code(tmp_path, pruned_dir, monkeypatch):
    import edgeprune.validation as v

    def broken(*args, **kwargs):
        raise ExportError("onnxruntime output differs from torch: relative error 1e+00 > 1e-04")

    monkeypatch.setattr(v, "check_onnx", broken)
    out = CliRunner().invoke(main, ["validate", "cifar_resnet20", str(pruned_dir), "--target", "cpu-ort",
                                    "--out", str(tmp_path / "v")])
    assert out.exit_code == 3 and "numerics" in out.output
    with pytest.raises(NumericsFailure):
        validate(resolve_model("cifar_resnet20"), resolve_model(str(pruned_dir)),
                 target_from_dict("t", FAST_ORT), tmp_path / "w")


def test_validate_help_says_it_predicts_and_gates_only_with_a_profile_given():
    # validate takes no default profile (a gate that appears with a shipped profile would surprise a pipeline)
    out = CliRunner().invoke(main, ["validate", "--help"], terminal_width=200).output
    profile_help = out.split("--profile FILE")[1].split("--data")[0]
    assert "default: none" in profile_help and "shipped" not in profile_help


def test_validate_gate_failure_exit_code(tmp_path, pruned_dir, monkeypatch):
    """A profile that promises far more speedup than measurable makes validate exit 4."""
    import edgeprune.validation as v

    monkeypatch.setattr(v, "predict_pair", lambda *args: (1.0, 0.01))  # predicts a 100x speedup
    out = CliRunner().invoke(main, ["validate", "cifar_resnet20", str(pruned_dir), "--target", "cpu-ort",
                                    "--profile", str(PROFILE), "--out", str(tmp_path / "v")])
    assert out.exit_code == 4 and "FAIL" in out.output and "falls short" in out.output


@pytest.mark.parametrize("command", [
    ["validate", "cifar_resnet20", "PRUNED", "--target", "cpu-ort-int8", "--profile", str(PROFILE)],
    ["prune", "cifar_resnet20", "--target", "cpu-ort-int8", "--latency", "0.8x", "--profile", str(PROFILE)],
    ["profile", "check", "cpu-torch", "--model", "cifar_resnet20", "--profile", str(PROFILE)],
])  # fmt: skip
def test_a_profile_measured_running_otherwise_cannot_price_the_target(tmp_path, pruned_dir, command):
    """The fp32 onnxruntime tables would price int8 (or torch) layers: an error naming what differs."""
    writes = command[0] != "profile"  # profile check writes nothing
    args = [str(pruned_dir) if a == "PRUNED" else a for a in command] + (["--out", str(tmp_path / "o")] * writes)
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 1, out.output
    assert "measured for target 'cpu-ort' with" in out.output and "cannot price" in out.output
    if writes:
        assert not (tmp_path / "o").exists()


def test_report_rebuild_and_pareto(tmp_path, pruned_dir):
    target = target_from_dict("fast-ort", FAST_ORT)
    report = validate(resolve_model("cifar_resnet20"), resolve_model(str(pruned_dir)), target, tmp_path / "a")
    for i, acc in enumerate([0.9, 0.8, 0.85]):
        report["pruned"]["accuracy"], report["original"]["accuracy"] = acc, 0.92
        report["derived"]["accuracy_delta_points"] = 100 * (acc - 0.92)
        report["pruned"]["latency"]["median_ms"] = 1.0 + i
        (tmp_path / f"b{i}").mkdir()
        (tmp_path / f"b{i}" / "report.json").write_text(json.dumps(report))
    (tmp_path / "a" / "report.md").unlink()
    out = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "a" / "report.md").exists() and (tmp_path / "pareto.png").exists()
    out = CliRunner().invoke(main, ["report", str(tmp_path / "a" / "..")])
    assert out.exit_code == 0
    (tmp_path / "b0" / "report.json").write_text("{")
    out = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert out.exit_code == 1 and "not valid JSON" in out.output


def test_validate_on_the_torch_backend(tmp_path, pruned_dir):
    target = target_from_dict("fast-torch", {**FAST_ORT, "backend": "torch"})
    report = validate(resolve_model("cifar_resnet20"), resolve_model(str(pruned_dir)), target, tmp_path / "t")
    assert any(op.startswith("aten::") for op in report["original"]["ms_by_op"])
    for side in ("original", "pruned"):  # the torch profiler times every leaf module, by its path
        module = resolve_model("cifar_resnet20" if side == "original" else str(pruned_dir)).module
        leaves = {n for n, m in module.named_modules() if not list(m.children())}
        assert set(report[side]["ms_by_layer"]) == leaves
    assert report["derived"]["measured_speedup"] > 0
