"""Ultralytics classifiers (``ultralytics:yolov8n-cls.yaml``) through edgeprune's classifier pipeline: the model
answers its logits as Ultralytics' head computes them, prunes within the oracle (its 1280-wide head conv
included), takes a folder's class count, and compresses end to end on an image folder (train, prune, fine-tune,
ONNX, validate). A checkpoint whose name says another task, and a dataset yaml as its data: clear errors."""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch
from click.testing import CliRunner
from test_data import make_folder

from edgeprune.cli import main
from edgeprune.errors import InputError
from edgeprune.graph import build_graph
from edgeprune.graph.groups import CONV_OUT
from edgeprune.latency.variants import random_plan
from edgeprune.models import create_model, get_entry
from edgeprune.models.ultralytics_models import CLS_FAMILY, FAMILY, YoloClassifier
from edgeprune.prune import shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, oracle_error

SIDE = 64  # stride 32: a 2 x 2 map before the head


@pytest.mark.parametrize("name", ["yolov8n-cls.yaml", "yolo11n-cls.yaml", "yolo26n-cls.yaml"])
def test_a_yolo_classifier_answers_its_logits_and_prunes_exactly(name):
    entry = get_entry(f"ultralytics:{name}")
    assert (entry.family, entry.input_size) == (CLS_FAMILY, (3, 224, 224))
    torch.manual_seed(0)
    model = liven(create_model(f"ultralytics:{name}"), SIDE)
    assert isinstance(model, YoloClassifier)
    x = torch.randn(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model.eval()(x)
        own = copy.deepcopy(model.model).eval()(x)  # Ultralytics answers (softmax, logits) in eval mode
    assert logits.shape == (2, 1000)
    torch.testing.assert_close(logits, own[1])
    torch.testing.assert_close(logits.softmax(1), own[0])

    graph = build_graph(model, torch.randn(1, 3, SIDE, SIDE), model_name=f"ultralytics:{name}")
    conv = f"model.model.{len(model.model.model) - 1}.conv.conv"
    head = [g for g in graph.prunable_groups if any(m.path == conv and m.kind == CONV_OUT for u in g.units
                                                    for m in u.members)]  # fmt: skip
    assert len(head) == 1 and len(head[0].units) == 1280  # the head's conv, read by the pool and the linear layer
    for seed in (1, 2):
        plan = random_plan(graph, random.Random(seed), low=0.2)
        pruned, _ = shrink(model, graph, plan)
        assert oracle_error(model, graph, plan, pruned, x) <= ORACLE_TOLERANCE
    assert pruned.model.model[-1].linear.in_features < 1280


def test_a_classifier_yaml_named_with_its_backbone_is_a_classifier():
    name = "ultralytics:yolov8n-cls-resnet50.yaml"  # "-cls-" inside the name, not at its end
    assert get_entry(name).family == CLS_FAMILY
    model = create_model(name)
    assert isinstance(model, YoloClassifier)
    assert model.eval()(torch.randn(1, 3, SIDE, SIDE)).shape == (1, 1000)


def test_a_yolo_classifier_takes_a_folders_classes_and_its_arch_spec_rebuilds_them(tmp_path):
    model = create_model("ultralytics:yolov8n-cls.yaml", num_classes=3)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, SIDE, SIDE)).shape == (1, 3)
    rebuilt = create_model("ultralytics:yolov8n-cls.yaml", **model.arch_kwargs())
    assert rebuilt.model.model[-1].linear.out_features == 3 and len(rebuilt.model.names) == 3
    with pytest.raises(TypeError, match="a detector's classes are its dataset yaml's"):
        create_model("ultralytics:yolov8n.yaml", num_classes=3)


def test_a_checkpoint_named_for_another_task_is_a_clear_error(tmp_path):
    from ultralytics.nn.tasks import ClassificationModel

    ckpt = {"model": ClassificationModel("yolov8n-cls.yaml", verbose=False)}
    torch.save(ckpt, tmp_path / "mine.pt")  # a classifier under a detector's name
    assert get_entry(f"ultralytics:{tmp_path / 'mine.pt'}").family == FAMILY
    with pytest.raises(InputError, match=r"mine.pt holds a classification model but is named as a detector: .* -cls"):
        create_model(f"ultralytics:{tmp_path / 'mine.pt'}")
    (tmp_path / "mine-cls.pt").write_bytes((tmp_path / "mine.pt").read_bytes())
    assert isinstance(create_model(f"ultralytics:{tmp_path / 'mine-cls.pt'}"), YoloClassifier)


def test_a_yolo_classifier_compresses_end_to_end_on_an_image_folder(tmp_path):
    folder, run = make_folder(tmp_path / "f"), tmp_path / "run"
    args = ["compress", "ultralytics:yolov8n-cls.yaml", "--data", folder, "--input-size", str(SIDE), "--target",
            "cpu-ort", "--macs", "0.6x", "--reg-epochs", "1", "--finetune-epochs", "1", "--max-steps", "1",
            "--batch-size", "4", "--tolerance", "1", "--out", run, "--json"]  # fmt: skip
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["macs"]["speedup"] >= 1.4
    report = json.loads((run / "validate" / "report.json").read_text())
    assert report["pruned"]["accuracy"] * 6 == pytest.approx(round(report["pruned"]["accuracy"] * 6))  # 6 val images
    assert report["original"]["input_shape"][1:] == [3, SIDE, SIDE]

    r = CliRunner().invoke(main, ["eval", str(run / "finetune" / "model"), "--data", str(tmp_path / "d.yaml")])
    assert r.exit_code != 0 and "MODEL must be an Ultralytics detector" in r.output
