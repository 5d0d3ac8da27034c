"""Ultralytics pose and OBB models through the task pipeline: a pruned YOLO-pose fine-tunes on keypoint labels
through Ultralytics' PoseTrainer and is scored on keypoints (OKS mAP), in torch and as its ONNX runs in
ONNX Runtime; a pruned YOLO-OBB on polygon labels through the OBBTrainer. Labels the task cannot read, a
yaml without kpt_shape, keypoints of another shape: clear errors before anything is trained or written.
On tiny data made here (coloured rectangles at 64 px; keypoints on each rectangle's border)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from test_detect import SIDE, assert_task_eval, make_split, write_yaml

from edgeprune.errors import InputError
from edgeprune.plan.run import shrink_run
from edgeprune.prune import load_model_ref
from edgeprune.targets import target_from_dict
from edgeprune.train.detect import detection_metrics, finetune_detector
from edgeprune.validation import resolve_pair, validate

POSE, OBB = "ultralytics:yolov8n-pose.yaml", "ultralytics:yolo11n-obb.yaml"
POSE_KEYS = ("pose mAP50-95", "pose mAP50")
KEYPOINTS = 17  # yolov8n-pose.yaml's kpt_shape: [17, 3]


def add_keypoints(root, split: str, count: int = KEYPOINTS) -> None:
    """Turn ``split``'s box labels into one-class pose labels: ``count`` visible keypoints around each box's
    border (x y visibility, normalized)."""
    for path in sorted((root / "labels" / split).iterdir()):
        rows = []
        for row in path.read_text().split("\n"):
            if not row.strip():
                continue
            cx, cy, w, h = map(float, row.split()[1:])
            t = np.linspace(0, 2 * np.pi, count, endpoint=False)
            points = [(cx + w / 2 * np.cos(a), cy + h / 2 * np.sin(a)) for a in t]
            rows.append("0 " + " ".join(row.split()[1:]) + "".join(f" {x:.4f} {y:.4f} 2" for x, y in points))
        path.write_text("\n".join(rows) + "\n")


def pose_yaml(path, root, kpt_shape=(KEYPOINTS, 3), classes: int = 1) -> str:
    shape = f"kpt_shape: [{kpt_shape[0]}, {kpt_shape[1]}]\n" if kpt_shape else ""
    names = "".join(f"  {i}: {'person' if i == 0 else f'c{i}'}\n" for i in range(classes))
    path.write_text(f"path: {root}\ntrain: images/train\nval: images/val\n{shape}names:\n{names}")
    return str(path)


@pytest.fixture(scope="module")
def pose(tmp_path_factory):
    """(pose dataset yaml, a pruned yolov8n-pose folder)."""
    root = tmp_path_factory.mktemp("pose")
    rng = np.random.default_rng(3)
    for split, n in (("train", 8), ("val", 6)):
        make_split(root, split, n, rng)
        add_keypoints(root, split)
    torch.manual_seed(0)
    shrink_run(POSE, False, 0.3, None, str(root / "pruned"), input_size=SIDE)
    return pose_yaml(root / "pose.yaml", root), root / "pruned"


def test_a_pruned_yolo_pose_finetunes_on_keypoints_and_is_scored_on_them(pose, tmp_path):
    data, pruned = pose
    out = tmp_path / "ft"
    result = finetune_detector(str(pruned), data, out, epochs=1, imgsz=SIDE, batch=4, progress=False)
    assert all(0 <= result[k] <= 1 for k in ("mAP50-95", *POSE_KEYS))
    run = json.loads((out / "run.json").read_text())
    assert run["task"] == "pose" and {"pose_loss", "kobj_loss", "box_loss"} <= set(run["epochs"][0]["train_loss"])
    assert yaml.safe_load((out / "data.yaml").read_text())["kpt_shape"] == [17, 3]  # what Ultralytics was given
    before, after = load_model_ref(str(pruned))[0], load_model_ref(str(out))[0]
    assert {k: v.shape for k, v in after.state_dict().items()} == {k: v.shape for k, v in before.state_dict().items()}
    trained, started = after.state_dict(), before.state_dict()
    keypoint_convs = [k for k in trained if ".cv4." in k and k.endswith("conv.weight")]
    assert keypoint_convs and any(not torch.equal(trained[k], started[k]) for k in keypoint_convs)

    assert_task_eval(out, data, "pose", POSE_KEYS)


def test_validate_scores_a_pose_model_on_keypoints_as_deployed(pose, tmp_path):
    """validate with a pose dataset reports both sides' keypoint metrics beside the timing (that the deployed
    artifact's raw outputs decode as the torch model's do: test_ultralytics, for every head)."""
    data, pruned = pose
    target = target_from_dict("t-fp32", {"backend": "onnxruntime", "threads": 1, "warmup": 1, "repeats": 2,
                                         "rounds": 2})  # fmt: skip
    report = validate(*resolve_pair(POSE, str(pruned)), target, tmp_path / "v", data=data)
    for side in (report["original"], report["pruned"]):
        assert side["accuracy_metric"] == "mAP50-95" and set(POSE_KEYS) <= set(side["task_metrics"])
        assert side["task_metrics"]["task"] == "pose"
    assert "| pose mAP50-95 |" in (tmp_path / "v" / "report.md").read_text()


def test_pose_data_a_model_cannot_read_is_a_clear_error(pose, tmp_path):
    _, pruned = pose
    make_split(tmp_path, "train", 2, np.random.default_rng(0))
    make_split(tmp_path, "val", 2, np.random.default_rng(1))
    with pytest.raises(InputError, match="no 'kpt_shape:' entry"):
        finetune_detector(str(pruned), pose_yaml(tmp_path / "none.yaml", tmp_path, None), tmp_path / "out", epochs=1,
                          imgsz=SIDE)  # fmt: skip
    boxes = pose_yaml(tmp_path / "boxes.yaml", tmp_path)
    with pytest.raises(InputError, match=r"train/000.txt: a box label .*; a pose model needs 56 values a row"):
        finetune_detector(str(pruned), boxes, tmp_path / "out", epochs=1, imgsz=SIDE)
    with pytest.raises(InputError, match=r"val/000.txt: a box label"):
        detection_metrics(str(pruned), boxes, imgsz=SIDE)
    add_keypoints(tmp_path, "train", 5)
    add_keypoints(tmp_path, "val", 5)
    with pytest.raises(InputError, match=r"predicts keypoints of shape \[17, 3\] but .* has kpt_shape: \[5, 3\]"):
        finetune_detector(str(pruned), pose_yaml(tmp_path / "five.yaml", tmp_path, (5, 3)), tmp_path / "out",
                          epochs=1, imgsz=SIDE)  # fmt: skip
    with pytest.raises(InputError, match=r"kpt_shape: \[5, 4\]; expected \[keypoints, 2 or 3\]"):
        detection_metrics(str(pruned), pose_yaml(tmp_path / "bad.yaml", tmp_path, (5, 4)), imgsz=SIDE)
    assert not (tmp_path / "out").exists()


def test_a_pruned_yolo_obb_finetunes_on_polygons_and_refuses_boxes(tmp_path):
    rng = np.random.default_rng(5)
    make_split(tmp_path, "train", 8, rng, polygons=True)
    make_split(tmp_path, "val", 6, rng, polygons=True)
    data = write_yaml(tmp_path / "obb.yaml", tmp_path)
    torch.manual_seed(0)
    shrink_run(OBB, False, 0.3, None, str(tmp_path / "pruned"), input_size=SIDE)
    result = finetune_detector(str(tmp_path / "pruned"), data, tmp_path / "ft", epochs=1, imgsz=SIDE, batch=4,
                               progress=False)  # fmt: skip
    assert 0 <= result["mAP50-95"] <= 1 and set(result) == {"status", "mAP50-95", "mAP50", "precision", "recall"}
    run = json.loads((tmp_path / "ft" / "run.json").read_text())
    assert run["task"] == "obb" and "angle_loss" in run["epochs"][0]["train_loss"]
    assert detection_metrics(str(tmp_path / "ft"), data, imgsz=SIDE)["task"] == "obb"

    boxes = tmp_path / "boxes"
    make_split(boxes, "train", 2, np.random.default_rng(0))
    make_split(boxes, "val", 2, np.random.default_rng(1))
    with pytest.raises(InputError, match=r"000.txt: a box label .*; an OBB model needs polygon labels"):
        finetune_detector(str(tmp_path / "pruned"), write_yaml(tmp_path / "boxes.yaml", boxes), tmp_path / "out",
                          epochs=1, imgsz=SIDE)  # fmt: skip
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["yolo26n-pose.yaml", "yolo26n-seg.yaml"])
def test_yolo26_pose_and_segmentation_models_finetune_pruned(name, tmp_path):
    """Their heads compute branches in training only (keypoint spreads; semantic logits): pruned, they still train
    through Ultralytics' trainer, its losses on those branches included."""
    rng = np.random.default_rng(7)
    pose = "pose" in name
    for split, n in (("train", 6), ("val", 4)):
        make_split(tmp_path, split, n, rng, polygons=not pose)
        if pose:
            add_keypoints(tmp_path, split)
    data = pose_yaml(tmp_path / "d.yaml", tmp_path, classes=80) if pose else write_yaml(tmp_path / "d.yaml", tmp_path)
    torch.manual_seed(0)
    shrink_run(f"ultralytics:{name}", False, 0.3, None, str(tmp_path / "pruned"), input_size=SIDE)
    result = finetune_detector(str(tmp_path / "pruned"), data, tmp_path / "ft", epochs=1, imgsz=SIDE, batch=2,
                               progress=False)  # fmt: skip
    assert 0 <= result["pose mAP50-95" if pose else "mask mAP50-95"] <= 1
    losses = json.loads((tmp_path / "ft" / "run.json").read_text())["epochs"][0]["train_loss"]
    assert ("rle_loss" if pose else "sem_loss") in losses, losses
