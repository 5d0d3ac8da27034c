"""`edgeprune prune` and `edgeprune compress`: artifacts, resume by stage, nothing half-written, exit codes."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import edgeprune.train.run as train_mod
from edgeprune import compress as pipeline
from edgeprune.cli import main
from edgeprune.compress import CompressConfig, CompressError, compress
from edgeprune.graph import build_graph
from edgeprune.models import create_model
from edgeprune.plan.planner import Budget
from edgeprune.plan.run import PruneSettings
from edgeprune.prune import Plan, load_pruned, shrink
from edgeprune.train.trainer import TrainConfig

QUICK = TrainConfig(epochs=1, lr=0.01, batch_size=32, max_steps_per_epoch=2)


def quick_config(**kw) -> CompressConfig:
    settings = PruneSettings(Budget.parse("macs", "0.6x"), ranked_by="macs")
    base = dict(model="cifar_resnet20", target="cpu-ort", prune=settings, data="synthetic", train=QUICK,
                finetune=QUICK, tolerance=1.0)  # fmt: skip
    return CompressConfig(**{**base, **kw})


def test_prune_cli_writes_plan_and_model(tmp_path):
    out = tmp_path / "p"
    args = ["prune", "cifar_resnet20", "--target", "cpu-ort", "--macs", "0.5x", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    result = json.loads((out / "plan_result.json").read_text())
    assert result["ratio"]["macs"] <= 0.5
    assert result["oracle_error"] < 1e-4
    # The saved model is the saved plan applied to the model, and has the conv/linear weights the result counts.
    saved = load_pruned(out / "model")
    model = create_model("cifar_resnet20").eval()
    graph = build_graph(model, torch.randn(1, 3, 32, 32), model_name="cifar_resnet20")
    expected, _ = shrink(model, graph, Plan.load(out / "plan.json"))
    assert {k: v.shape for k, v in saved.state_dict().items()} == {k: v.shape for k, v in expected.state_dict().items()}
    weights = sum(m.weight.numel() for m in saved.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert weights == round(result["pruned"]["params"] * 1e6) < round(result["dense"]["params"] * 1e6)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "not empty" in again.output


@pytest.mark.parametrize(("args", "message"), [
    (["--macs", "0.5x", "--latency", "0.5x"], "exactly one budget"),
    (["--macs", "half"], "cannot read macs budget"),
    (["--macs", "0.01x", "--max-removed", "0.5"], "reachable minimum"),
    (["--latency", "0.5x", "--target", "no-such-target"], "unknown target"),
])  # fmt: skip
def test_prune_cli_bad_input(tmp_path, args, message):
    base = ["prune", "cifar_resnet20", "--out", str(tmp_path / "p")]
    if "--target" not in args:
        base += ["--target", "cpu-ort"]
    r = CliRunner().invoke(main, base + args)
    assert r.exit_code != 0 and message in r.output
    assert not (tmp_path / "p").exists()


def test_compress_runs_every_stage_then_resumes_only_what_is_missing(tmp_path, monkeypatch):
    run = tmp_path / "run"
    cfg = quick_config(steps=2)
    calls = []

    def failing_export(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline, "_export", failing_export)
    with pytest.raises(RuntimeError, match="disk full"):
        compress(cfg, run, progress=False)
    assert (run / "train" / "run.json").is_file() and (run / "prune" / "step2" / "plan_result.json").is_file()
    # the plan keeps residual streams whole, so the regularizer left them alone
    assert json.loads((run / "train" / "run.json").read_text())["reg_kwargs"]["streams"] is False
    assert not (run / "export").exists() and not list(run.glob(".export*"))
    monkeypatch.undo()
    original_train_run = train_mod.train_run
    monkeypatch.setattr(train_mod, "train_run", lambda *a, **k: calls.append(a) or original_train_run(*a, **k))
    summary = compress(cfg, run, progress=False)
    assert calls == []  # training, pruning and fine-tuning were done: not run again
    assert (run / "export" / "model.onnx").is_file() and (run / "validate" / "report.json").is_file()
    assert summary["macs"]["speedup"] >= 1.5
    assert json.loads((run / "summary.json").read_text())["report"].endswith("report.md")
    with pytest.raises(CompressError, match="other settings"):
        compress(quick_config(steps=1), run, progress=False)


def test_compress_removes_branches_over_two_steps(tmp_path):
    """Step 2 prunes a model whose branches step 1 removed; export and validation take it as it is."""
    from edgeprune.models.layers import BranchConstant
    from edgeprune.plan.planner import PlanConstraints

    settings = PruneSettings(Budget.parse("macs", "0.3x"), ranked_by="macs",
                             constraints=PlanConstraints(remove_branches=True))  # fmt: skip
    summary = compress(quick_config(steps=2, prune=settings), tmp_path / "run", progress=False)
    assert summary["macs"]["speedup"] >= 3.0
    emptied = [json.loads((tmp_path / "run" / "prune" / f"step{i}" / "plan_result.json").read_text())["groups"]
               for i in (1, 2)]  # fmt: skip
    assert all(any(g["kept"] == 0 for g in groups) for groups in emptied)
    final = load_pruned(tmp_path / "run" / "prune" / "step2" / "model")
    assert any(isinstance(m, BranchConstant) for m in final.modules())
    assert (tmp_path / "run" / "validate" / "report.json").is_file()


def test_compress_runs_a_timm_model_on_an_image_folder_at_its_input_size_from_a_weights_file(tmp_path):
    import onnx
    from safetensors.torch import save_file
    from test_data import make_folder

    folder, run = make_folder(tmp_path / "f"), tmp_path / "run"
    start = create_model("timm:lcnet_050", num_classes=3)
    save_file(dict(start.state_dict()), str(tmp_path / "w.safetensors"))
    args = ["compress", "timm:lcnet_050", "--weights", tmp_path / "w.safetensors", "--data", folder, "--input-size",
            "64", "--target", "cpu-ort", "--macs", "0.6x", "--reg-epochs", "1", "--finetune-epochs", "1", "--max-steps",
            "1", "--batch-size", "4", "--tolerance", "1", "--out", run, "--json"]  # fmt: skip
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["macs"]["speedup"] >= 1.4
    # every stage after training works at the folder's size: recorded with the models, planned, exported, timed
    for model_dir in (run / "train" / "model", run / "prune" / "step1" / "model", run / "finetune" / "model"):
        assert json.loads((model_dir / "arch.json").read_text())["input_size"] == [3, 64, 64], model_dir
    dims = onnx.load(run / "export" / "model.onnx").graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims][1:] == [3, 64, 64]
    report = json.loads((run / "validate" / "report.json").read_text())
    assert report["original"]["input_shape"][1:] == [3, 64, 64] == report["pruned"]["input_shape"][1:]
    assert report["pruned"]["accuracy"] * 6 == pytest.approx(round(report["pruned"]["accuracy"] * 6))
    # the shipped profile holds no 64² LCNet layers: validated on measurements alone, and the report says so
    assert report["pruned"]["predicted_ms"] is None and report["gate"]["reason"].startswith("no profile")
    # training started from the file's weights (a 3-class head), not from a fresh model
    config = json.loads((run / "compress.json").read_text())
    assert config["pretrained"] == str(tmp_path / "w.safetensors") and config["input_size"] == 64


def test_compress_prunes_on_calibration_images_when_asked(tmp_path):
    none = TrainConfig(epochs=0)
    cfg = quick_config(train=none, finetune=none, calibration_data="synthetic", calibration_count=8)
    compress(cfg, tmp_path / "run", progress=False)
    planned = json.loads((tmp_path / "run" / "prune" / "step1" / "plan_result.json").read_text())
    assert planned["importance"] == "output change on 8 calibration images"
    saved = json.loads((tmp_path / "run" / "compress.json").read_text())
    assert (saved["calibration_data"], saved["calibration_count"]) == ("synthetic", 8)
    assert "calibration_data" not in quick_config().to_dict()  # runs saved before the option resume as they were


def test_the_width_power_is_saved_only_when_set_so_older_runs_resume():
    """Runs saved before the width power existed planned at its default (0) and have no such key: a default run
    writes none either, so they resume; a run that sets it writes it, so the settings check tells them apart."""
    from edgeprune.plan.budget import PlanConstraints

    assert PlanConstraints.width_power == 0.0
    assert "width_power" not in quick_config().to_dict()["prune"]["constraints"]
    set_ = quick_config(prune=PruneSettings(Budget.parse("macs", "0.6x"), ranked_by="macs",
                                            constraints=PlanConstraints(width_power=0.5)))  # fmt: skip
    assert set_.to_dict()["prune"]["constraints"]["width_power"] == 0.5


def test_compress_cli_calibration_count_needs_calibration_data(tmp_path):
    r = CliRunner().invoke(main, ["compress", "cifar_resnet20", "--target", "cpu-ort", "--macs", "0.6x",
                                  "--calibration-count", "8", "--out", str(tmp_path / "run")])  # fmt: skip
    assert r.exit_code == 2 and "--calibration-count cannot be used without --calibration-data" in r.output
    assert not (tmp_path / "run").exists()


def test_train_and_compress_prune_around_a_block_fx_cannot_trace_with_freeze_unknown(tmp_path):
    """tiny_nets:opaque_block_cnn has a block fx cannot follow: without --freeze-unknown training stops at once
    with that advice; with it every stage runs, the block kept whole."""
    train = ["train", "tiny_nets:opaque_block_cnn", "--data", "synthetic", "--epochs", "1", "--max-steps", "1"]
    r = CliRunner().invoke(main, [*train, "--out", str(tmp_path / "t")])
    assert r.exit_code == 1 and "in block (ClampLoud)" in r.output and "--freeze-unknown" in r.output
    assert not (tmp_path / "t" / "model").exists()
    r = CliRunner().invoke(main, [*train, "--freeze-unknown", "--out", str(tmp_path / "t2")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "t2" / "model" / "arch.json").is_file()

    cfg = quick_config(model="tiny_nets:opaque_block_cnn", freeze_unknown=True, prune=PruneSettings(
        Budget.parse("macs", "0.9x"), ranked_by="macs"))  # fmt: skip
    summary = compress(cfg, tmp_path / "run", progress=False)
    assert summary["macs"]["speedup"] > 1.0 and (tmp_path / "run" / "validate" / "report.json").is_file()
    final = load_pruned(tmp_path / "run" / "prune" / "step1" / "model")
    assert final.block.conv.weight.shape == (12, 12, 3, 3) and final.a.out_channels < 8  # kept whole; a pruned
    assert json.loads((tmp_path / "run" / "compress.json").read_text())["freeze_unknown"] is True
    assert "freeze_unknown" not in quick_config().to_dict()  # runs saved before the setting existed still resume
