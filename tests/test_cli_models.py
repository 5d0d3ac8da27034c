"""Model registry, pretrained weights, and the command line (ONNX round trips: test_models_matrix.py)."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.models import UnknownModelError, create_model, list_models
from edgeprune.prune import load_pruned


def test_registry_lists_cifar_and_every_torchvision_classifier():
    names = set(list_models())
    assert {f"cifar_resnet{d}" for d in (20, 32, 44, 56, 110)} | {"cifar_vgg16"} <= names
    tv = set(torchvision.models.list_models(module=torchvision.models))
    assert len(tv) >= 80 and tv <= names


def test_user_factory_and_unknown_names():
    model = create_model("torchvision.models:resnet18", num_classes=7)
    assert model.fc.out_features == 7
    with pytest.raises(UnknownModelError, match="resnet5"):
        create_model("resnet5")
    with pytest.raises(UnknownModelError, match="cannot import"):
        create_model("no_such_pkg.mod:f")
    with pytest.raises(ValueError, match="no pretrained"):
        create_model("cifar_resnet110", pretrained=True)


def test_pretrained_torchvision_weights_that_cannot_be_downloaded_are_a_clear_error(tmp_path, monkeypatch):
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(FileNotFoundError, match="pretrained mobilenet_v2 weights.*leave out --pretrained"):
        create_model("mobilenet_v2", pretrained=True)
    r = CliRunner().invoke(main, ["prune", "mobilenet_v2", "--pretrained", "--target", "cpu-ort", "--macs", "0.5x",
                                  "--out", str(tmp_path / "p")])  # fmt: skip
    assert r.exit_code == 1 and "Traceback" not in r.output and "downloading them failed" in r.output
    assert not (tmp_path / "p").exists()


def test_pretrained_resnet56_accuracy_on_lossless_test_images():
    from edgeprune.train.data import load_lossless_subset

    try:
        x, y = load_lossless_subset("test")
        model = create_model("cifar_resnet56", pretrained=True).eval()
    except FileNotFoundError as exc:
        pytest.skip(f"CIFAR data or checkpoints not available here: {exc}")
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(1) for b in x.split(256)])
    accuracy = (pred == y).float().mean().item()
    assert len(y) == 1017 and accuracy >= 0.92, f"top-1 {accuracy:.4f}"


def test_cli_models_and_graph():
    runner = CliRunner()
    out = runner.invoke(main, ["models", "--family", "cifar"])
    assert out.exit_code == 0 and "cifar_resnet56" in out.output and "resnet50" not in out.output
    out = runner.invoke(main, ["graph", "cifar_resnet20"])
    assert out.exit_code == 0 and "14 groups, 12 prunable" in out.output and "frozen: model input" in out.output
    assert out.output.count("a whole residual branch") == 9
    out = runner.invoke(main, ["graph", "cifar_resnet20", "--json"])
    data = json.loads(out.output)
    assert len(data["groups"]) == 14 and data["groups"][0]["frozen_reason"] == "model input"
    assert sum(g["branch_tail"] is not None for g in data["groups"]) == 9


def test_cli_shrink_writes_a_reloadable_model(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["shrink", "cifar_resnet20", "--ratio", "0.5", "--out", str(tmp_path / "run")])
    assert out.exit_code == 0, out.output
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"plan.json", "arch.json", "weights.safetensors"}
    model = load_pruned(tmp_path / "run")
    assert sum(p.numel() for p in model.parameters()) < 0.5 * sum(
        p.numel() for p in create_model("cifar_resnet20").parameters()
    )
    # The saved plan applies again to the same model, and gives the same architecture.
    again = runner.invoke(main, ["shrink", "cifar_resnet20", "--plan", str(tmp_path / "run" / "plan.json"),
                                 "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    for name in ("plan.json", "arch.json"):
        assert (tmp_path / "again" / name).read_text() == (tmp_path / "run" / name).read_text(), name


def test_cli_errors_exit_nonzero_and_write_nothing(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["graph", "no_such_model"])
    assert out.exit_code == 1 and "unknown model 'no_such_model'" in out.output
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps({"schema": "edgeprune.plan/1", "model": "x", "fingerprint": "f", "groups": {}}))
    out = runner.invoke(main, ["shrink", "cifar_resnet20", "--plan", str(bad), "--out", str(tmp_path / "o")])
    assert out.exit_code == 1 and "fingerprint" in out.output and not (tmp_path / "o").exists()
    out = runner.invoke(main, ["shrink", "cifar_resnet20", "--out", str(tmp_path / "o")])
    assert out.exit_code == 2 and "exactly one of" in out.output
    out = runner.invoke(main, ["shrink", "cifar_resnet20", "--ratio", "1.5", "--out", str(tmp_path / "o")])
    assert out.exit_code == 2
