"""Detectors' task pipeline (edgeprune.train.detect): a pruned YOLO fine-tunes through Ultralytics' trainer and
keeps its pruned widths, saves and reloads; mAP by Ultralytics' validator; distillation and a regularizer in
the loop; bad dataset yamls are clear errors before any training; the CLI routes detectors. On a tiny data set
made here (yolov8n from its yaml at 64 px); the real checkpoint on coco256 where the data folder has it."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from edgeprune.backends import prepare_runner
from edgeprune.cli import main
from edgeprune.errors import DataNotFoundError, InputError, MissingExtraError, OutputExistsError
from edgeprune.export import export_onnx
from edgeprune.paths import data_root
from edgeprune.plan.run import shrink_run
from edgeprune.prune import load_model_ref, save_pruned
from edgeprune.regularize import SparsityHook
from edgeprune.targets import target_from_dict
from edgeprune.train.calibration import calibration_images
from edgeprune.train.detect import detection_metrics, finetune_detector
from edgeprune.train.detect_data import check_detection_data
from edgeprune.train.detect_distill import detection_kd
from edgeprune.validation import resolve_model, resolve_pair, score_on, validate

SIDE, NC = 64, 80  # yolov8n.yaml detects the 80 COCO classes
COLORS = {0: (230, 30, 30), 1: (30, 200, 30), 2: (40, 40, 230)}  # a class is a coloured rectangle


def make_split(root, split: str, n: int, rng: np.random.Generator, polygons: bool = False) -> dict[int, int]:
    """n images with one or two boxes each (``polygons``: labelled as rectangle polygons); returns images per
    class."""
    (root / "images" / split).mkdir(parents=True)
    (root / "labels" / split).mkdir(parents=True)
    per_class: dict[int, int] = {}
    for i in range(n):
        img = np.full((SIDE, SIDE, 3), 128, np.uint8)
        lines, seen = [], set()
        for _ in range(1 + i % 2):
            c = int(rng.integers(0, len(COLORS)))
            w, h = rng.integers(16, 32, 2)
            x, y = rng.integers(0, SIDE - w), rng.integers(0, SIDE - h)
            img[y : y + h, x : x + w] = COLORS[c]
            if polygons:
                corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
                lines.append(f"{c} " + " ".join(f"{u / SIDE:.4f} {v / SIDE:.4f}" for u, v in corners))
            else:
                lines.append(f"{c} {(x + w / 2) / SIDE:.4f} {(y + h / 2) / SIDE:.4f} {w / SIDE:.4f} {h / SIDE:.4f}")
            seen.add(c)
        Image.fromarray(img).save(root / "images" / split / f"{i:03d}.jpg")
        (root / "labels" / split / f"{i:03d}.txt").write_text("\n".join(lines) + "\n")
        for c in seen:
            per_class[c] = per_class.get(c, 0) + 1
    return per_class


def assert_task_eval(model_dir, data: str, task: str, keys: tuple[str, ...], images: int = 6) -> None:
    """`edgeprune eval` of a task model reports the task's own metrics (``keys``), overall and per class, in JSON
    and in text."""
    r = CliRunner().invoke(main, ["eval", str(model_dir), "--data", data, "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["task"] == task and m["images"] == images and all(0 <= m[k] <= 1 for k in keys)
    assert all(set(keys) <= set(c) for c in m["per_class"].values())
    r = CliRunner().invoke(main, ["eval", str(model_dir), "--data", data])
    assert r.exit_code == 0 and keys[0] in r.output, r.output


def write_yaml(path, root, **entries) -> str:
    names = "".join(f"  {i}: c{i}\n" for i in range(NC))
    body = "".join(f"{k}: {v}\n" for k, v in {"path": root, "train": "images/train", "val": "images/val",
                                               **entries}.items() if v is not None)  # fmt: skip
    path.write_text(body + "names:\n" + names)
    return str(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(dataset yaml, images per class in val, a pruned yolov8n folder)."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    make_split(root, "train", 8, rng)
    val_counts = make_split(root, "val", 6, rng)
    data = write_yaml(root / "tiny.yaml", root)
    torch.manual_seed(0)
    shrink_run("ultralytics:yolov8n.yaml", False, 0.3, None, str(root / "pruned"), input_size=SIDE)
    return data, val_counts, root / "pruned"


def shapes(model: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_cli_finetunes_a_pruned_yolo_that_keeps_its_widths_then_evaluates_it(tiny, tmp_path):
    data, val_counts, pruned = tiny
    out = tmp_path / "ft"
    r = CliRunner().invoke(main, ["train", str(pruned), "--data", data, "--reg", "none", "--epochs", "1",
                                  "--input-size", str(SIDE), "--batch-size", "4", "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    before, after = load_model_ref(str(pruned))[0], load_model_ref(str(out))[0]
    dense = load_model_ref("ultralytics:yolov8n.yaml")[0]
    assert shapes(after) == shapes(before) != shapes(dense)  # trained as pruned: Ultralytics rebuilt nothing
    b = before.state_dict()
    trained = [k for k, v in after.state_dict().items() if v.is_floating_point()
               and not torch.allclose(v, b[k], rtol=1e-5, atol=1e-7)]  # fmt: skip
    assert any(k.endswith("conv.weight") for k in trained)
    # batch norms kept their running statistics (the default); their scale and shift learned
    assert not any(k.endswith(("running_mean", "running_var")) for k in trained)
    run = json.loads((out / "run.json").read_text())
    assert [e["epoch"] for e in run["epochs"]] == [1] and run["images"] == {"train": 8, "val": 6}
    assert set(run["epochs"][0]["train_loss"]) == {"box_loss", "cls_loss", "dfl_loss"}
    assert all(0 <= run["result"][k] <= 1 for k in ("mAP50-95", "mAP50", "precision", "recall"))
    assert json.loads((out / "model" / "arch.json").read_text())["input_size"] == [3, SIDE, SIDE]
    assert not list(out.rglob("*.pt")) and not list((pruned.parent / "labels").glob("*.cache"))

    r = CliRunner().invoke(main, ["eval", str(out), "--data", data, "--json"])  # the size saved with the model
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["imgsz"] == SIDE and m["images"] == 6 and m["split"] == "val"
    assert all(0 <= m[k] <= 1 for k in ("mAP50-95", "mAP50", "precision", "recall"))
    assert {name: c["images"] for name, c in m["per_class"].items()} == {f"c{c}": n for c, n in val_counts.items()}
    with pytest.raises(OutputExistsError, match="already holds a run"):
        finetune_detector(str(pruned), data, out, epochs=1, imgsz=SIDE)


def test_distillation_and_a_regularizer_run_in_ultralytics_loop(tiny, tmp_path, monkeypatch):
    data, _, pruned = tiny
    calls: list[str] = []
    after_backward, after_step = SparsityHook.after_backward, SparsityHook.after_step

    def backward(hook):  # the penalty's gradient joins gradients that backward() produced already
        calls.append("backward" if any(p.grad is not None for p in hook.model.parameters()) else "no-grad")
        return after_backward(hook)

    def step(hook):
        calls.append("step")
        after_step(hook)

    monkeypatch.setattr(SparsityHook, "after_backward", backward)
    monkeypatch.setattr(SparsityHook, "after_step", step)
    teacher = tmp_path / "teacher"
    shrink_run("ultralytics:yolov8n.yaml", False, 0.0, None, str(teacher), input_size=SIDE)  # same classes, bins
    net = load_model_ref(str(teacher))[0]
    for stack in net.model.model[-1].cv3:  # a confident teacher: a random one scores every class near zero
        stack[-1].bias.data += 6
    save_pruned(net, json.loads((teacher / "model" / "arch.json").read_text()), teacher / "model")
    result = finetune_detector(str(pruned), data, tmp_path / "kd", epochs=1, imgsz=SIDE, batch=4, teacher=str(teacher),
                               reg="oicsr", reg_kwargs={"lam": 1e-4}, progress=False)  # fmt: skip
    assert result["status"] == "done"
    assert calls == ["backward", "step"] * 2  # 8 images, batch 4: one step per batch
    run = json.loads((tmp_path / "kd" / "run.json").read_text())
    assert run["epochs"][0]["train_loss"]["kd_loss"] > 0.1 and run["distill"]["teacher"] == str(teacher)
    groups = json.loads((tmp_path / "kd" / "importance.json").read_text())["groups"]
    assert groups and run["regularizer"] == "oicsr"


class TrainerStopped(Exception):
    pass


@pytest.mark.parametrize(("cuda", "extra", "device", "workers"),
                         [(False, None, "cpu", 0), (True, None, "0", 8), (True, {"workers": 2, "time": 0.1}, "0", 2),
                          (True, {"device": "cpu"}, "cpu", 0)])
def test_the_fine_tune_trains_on_the_gpu_when_there_is_one_and_extra_arguments_win(tiny, tmp_path, monkeypatch,
                                                                                    cuda, extra, device, workers):
    data, _, pruned = tiny
    seen: dict = {}

    def trainer_class(task):
        def build(net, hook, overrides, frozen_bn):
            seen.update(overrides)
            raise TrainerStopped

        return build

    monkeypatch.setattr("edgeprune.train.detect._trainer_class", trainer_class)
    monkeypatch.setattr("edgeprune.train.detect.torch.cuda.is_available", lambda: cuda)
    monkeypatch.setattr("edgeprune.train.detect.os.cpu_count", lambda: 16)
    with pytest.raises(TrainerStopped):
        finetune_detector(str(pruned), data, tmp_path / "run", epochs=1, imgsz=SIDE, extra=extra)
    assert (seen["device"], seen["workers"]) == (device, workers)
    assert seen.get("time") == (extra or {}).get("time")


def test_distillation_term_is_zero_for_the_teacher_itself_and_pulls_a_student_toward_it():
    g = torch.Generator().manual_seed(0)
    box, cls = torch.randn(2, 64, 21, generator=g), torch.randn(2, 80, 21, generator=g) - 4
    assert detection_kd(box, cls, box, cls, 4.0).abs().item() < 1e-5
    student = (box + torch.randn(box.shape, generator=g)).requires_grad_(), cls.clone().requires_grad_()
    loss = detection_kd(*student, box, cls + torch.randn(cls.shape, generator=g), 4.0)
    loss.backward()
    assert loss.item() > 0.01 and student[0].grad.abs().sum() > 0 and student[1].grad.abs().sum() > 0


def test_bad_dataset_yamls_are_clear_errors_before_training(tiny, tmp_path):
    data, _, pruned = tiny
    root = str(pruned.parent)
    cases = [
        (write_yaml(tmp_path / "a.yaml", tmp_path / "nowhere"), DataNotFoundError, "dataset root .*nowhere"),
        (write_yaml(tmp_path / "b.yaml", root, val="images/missing"), DataNotFoundError, "val images .*missing"),
        (write_yaml(tmp_path / "c.yaml", root, val=None), InputError, "no 'val:' entry"),
        (str(tmp_path / "none.yaml"), DataNotFoundError, "none.yaml does not exist"),
    ]
    (tmp_path / "d" / "images" / "val").mkdir(parents=True)
    (tmp_path / "d" / "images" / "train").mkdir(parents=True)
    cases.append((write_yaml(tmp_path / "d.yaml", tmp_path / "d"), DataNotFoundError, "no images in .*train"))
    shutil.copytree(pruned.parent / "images", tmp_path / "e" / "images")  # images without their labels folder
    cases.append((write_yaml(tmp_path / "e.yaml", tmp_path / "e"), DataNotFoundError, "no labels folder .*labels"))
    for i, (yaml, error, message) in enumerate(cases):
        with pytest.raises(error, match=message):
            finetune_detector(str(pruned), yaml, tmp_path / f"out{i}", epochs=1, imgsz=SIDE)
        assert not (tmp_path / f"out{i}").exists()
    assert check_detection_data(data).images == {"train": 8, "val": 6}
    other = tmp_path / "two.yaml"
    other.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: [a, b]\n")
    with pytest.raises(InputError, match="detects 80 classes but .*two.yaml names 2"):
        detection_metrics(str(pruned), other, imgsz=SIDE)


def test_detection_routes_and_their_usage_errors(tiny, monkeypatch):
    data, _, pruned = tiny
    runner = CliRunner()
    for args, message in [
        (["eval", str(pruned), "--data", "cifar10"], "is an Ultralytics detector: --data must be a dataset yaml"),
        (["eval", "cifar_resnet20", "--data", data], "MODEL must be an Ultralytics detector"),
        (["train", "ultralytics:yolov8n.yaml", "--data", data, "--resume", "--out", "x"], "--resume cannot be used"),
        (["eval", str(pruned), "--data", data, "--workers", "2"], "--workers cannot be used with a detector"),
        (["compress", str(pruned), "--data", data, "--target", "cpu-ort", "--macs", "0.5x", "--out", "x"],
         "a detection dataset yaml works with train and eval"),
    ]:
        r = runner.invoke(main, args)
        assert r.exit_code == 2 and message in r.output, r.output
    for module in ("ultralytics", "ultralytics.data.utils"):
        monkeypatch.setitem(sys.modules, module, None)  # import ultralytics now raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'edgeprune\[ultralytics\]'"):
        check_detection_data(data)


def coco256(tmp_path) -> tuple[str, str]:
    """(the real yolov8n checkpoint's model reference, a copy of coco256.yaml with its path set); skips without them."""
    root = data_root()
    weights = root / "pretrained" / "ultralytics" / "yolov8n.pt" if root is not None else None
    if weights is None or not weights.is_file() or not (root / "coco256" / "coco256.yaml").is_file():
        pytest.skip("yolov8n.pt and coco256 are not in the data folder here")
    text = (root / "coco256" / "coco256.yaml").read_text()
    data = tmp_path / "coco256.yaml"  # the shared file stays as it is: a copy with its path set
    data.write_text("\n".join(f"path: {root / 'coco256'}" if s.startswith("path:") else s for s in text.splitlines()))
    return f"ultralytics:{weights}", str(data)


def test_real_yolov8n_scores_on_coco256_val(tmp_path):
    model, data = coco256(tmp_path)
    m = detection_metrics(model, data, imgsz=256)
    assert m["images"] == 128 and m["instances"] == 898 and m["per_class"]["person"]["images"] > 0
    assert 0.15 < m["mAP50-95"] < m["mAP50"] < 1


def test_the_deployed_artifact_scores_as_the_torch_model_on_real_images(tmp_path):
    """mAP through the ONNX export in onnxruntime equals torch's (the head decodes the runtime's raw outputs);
    the int8 artifact, calibrated on real train images, loses a little and still detects."""
    model, data = coco256(tmp_path)
    ref, shape = resolve_model(model, side=256), (1, 3, 256, 256)
    export_onnx(ref.module, torch.randn(shape), tmp_path / "m.onnx")
    fp32 = target_from_dict("t-fp32", {"backend": "onnxruntime", "threads": 2})
    int8 = target_from_dict("t-int8", {"backend": "onnxruntime", "threads": 2, "precision": "int8",
                                       "calibration_count": 32})  # fmt: skip
    images = calibration_images(data, 32, ref.module, ref.name, 256)
    torch_map, metrics = score_on(ref.module, data, ref.name, 256)
    ort_map, _ = score_on(ref.module, data, ref.name, 256, prepare_runner(fp32, tmp_path / "m.onnx", shape), 1)
    q_map, _ = score_on(ref.module, data, ref.name, 256, prepare_runner(int8, tmp_path / "m.onnx", shape, images), 1)
    assert metrics["images"] == 128 and 0.15 < torch_map < metrics["mAP50"]
    assert ort_map == pytest.approx(torch_map, abs=2e-3)
    assert torch_map - 0.05 < q_map < torch_map + 0.01


def test_validate_reports_a_detectors_map_in_torch_and_deployed_int8(tiny, tmp_path):
    data, _, pruned = tiny
    target = target_from_dict("t-int8", {"backend": "onnxruntime", "threads": 1, "precision": "int8", "warmup": 1,
                                         "repeats": 2, "rounds": 2, "calibration_count": 8})  # fmt: skip
    report = validate(*resolve_pair("ultralytics:yolov8n.yaml", str(pruned)), target, tmp_path / "v", data=data)
    a, b, d = report["original"], report["pruned"], report["derived"]
    for side in (a, b):
        assert side["accuracy_metric"] == "mAP50-95" and side["calibration"]["count"] == 8
        assert side["accuracy"] == side["task_metrics"]["mAP50-95"] and side["task_metrics"]["images"] == 6
        assert side["deployed_accuracy"] == side["deployed_task_metrics"]["mAP50-95"]
    assert d["quantization_delta_points"] == pytest.approx(100 * (b["deployed_accuracy"] - b["accuracy"]))
    text = (tmp_path / "v" / "report.md").read_text()
    assert "| mAP50-95 |" in text and "| mAP50 |" in text and "| mAP50-95, deployed (the quantized" in text


def test_validate_input_size_sets_both_sides(tiny, tmp_path):
    _, _, pruned = tiny  # saved at 64 px
    r = CliRunner().invoke(main, ["validate", "ultralytics:yolov8n.yaml", str(pruned), "--target", "cpu-ort",
                                  "--input-size", "96", "--out", str(tmp_path / "v")])  # fmt: skip
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    assert report["original"]["input_shape"][1:] == report["pruned"]["input_shape"][1:] == [3, 96, 96]
