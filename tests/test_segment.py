"""Ultralytics segmentation models through the task pipeline (edgeprune.train.detect): a pruned YOLO-seg
fine-tunes on polygon labels through Ultralytics' SegmentationTrainer, with distillation, and is scored on
masks; box labels are refused before training; a segmentation yaml starts from the detection checkpoint of
the same model, its mask head random."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_detect import SIDE, assert_task_eval, make_split, write_yaml

from edgeprune.errors import DataNotFoundError, InputError
from edgeprune.models import create_model, get_entry
from edgeprune.models.ultralytics_models import find_yolo_weights
from edgeprune.plan.run import shrink_run
from edgeprune.prune import load_model_ref, save_pruned
from edgeprune.train.detect import detection_metrics, finetune_detector

SEG = "ultralytics:yolov8n-seg.yaml"
MASK_KEYS = ("mask mAP50-95", "mask mAP50")


@pytest.fixture(scope="module")
def polygons(tmp_path_factory):
    """(dataset yaml with polygon labels, a pruned and an unpruned yolov8n-seg folder)."""
    root = tmp_path_factory.mktemp("seg")
    rng = np.random.default_rng(1)
    make_split(root, "train", 8, rng, polygons=True)
    make_split(root, "val", 6, rng, polygons=True)
    torch.manual_seed(0)
    shrink_run(SEG, False, 0.3, None, str(root / "pruned"), input_size=SIDE)
    shrink_run(SEG, False, 0.0, None, str(root / "dense"), input_size=SIDE)
    teacher = load_model_ref(str(root / "dense"))[0]
    for stack in teacher.model.model[-1].cv3:  # a confident teacher: a random one scores every class near zero
        stack[-1].bias.data += 6
    save_pruned(teacher, json.loads((root / "dense" / "model" / "arch.json").read_text()), root / "dense" / "model")
    return write_yaml(root / "seg.yaml", root), root / "pruned", root / "dense"


def test_a_pruned_yolo_seg_finetunes_with_distillation_and_is_scored_on_masks(polygons, tmp_path):
    data, pruned, dense = polygons
    out = tmp_path / "ft"
    result = finetune_detector(str(pruned), data, out, epochs=1, imgsz=SIDE, batch=4, teacher=str(dense),
                               progress=False)  # fmt: skip
    assert all(0 <= result[k] <= 1 for k in ("mAP50-95", *MASK_KEYS))
    run = json.loads((out / "run.json").read_text())
    assert run["task"] == "segment" and run["epochs"][0]["train_loss"]["kd_loss"] > 0.1
    assert {"seg_loss", "box_loss", "cls_loss"} <= set(run["epochs"][0]["train_loss"])
    before, after = load_model_ref(str(pruned))[0], load_model_ref(str(out))[0]
    assert {k: v.shape for k, v in after.state_dict().items()} == {k: v.shape for k, v in before.state_dict().items()}
    proto = [k for k in after.state_dict() if ".proto." in k and k.endswith("conv.weight")]
    assert proto and any(not torch.equal(after.state_dict()[k], before.state_dict()[k]) for k in proto)

    assert_task_eval(out, data, "segment", MASK_KEYS)


def test_box_labels_are_a_clear_error_for_a_segmentation_model(polygons, tmp_path):
    _, pruned, _ = polygons
    make_split(tmp_path, "train", 2, np.random.default_rng(0))
    make_split(tmp_path, "val", 2, np.random.default_rng(1))
    boxes = write_yaml(tmp_path / "boxes.yaml", tmp_path)
    with pytest.raises(InputError, match=r"000.txt: a box label .*needs polygon labels"):
        finetune_detector(str(pruned), boxes, tmp_path / "out", epochs=1, imgsz=SIDE)
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="needs polygon labels"):
        detection_metrics(str(pruned), boxes, imgsz=SIDE)
    mixed = tmp_path / "mixed"  # polygons to train on, boxes to validate on: the trainer validates every epoch
    make_split(mixed, "train", 2, np.random.default_rng(0), polygons=True)
    make_split(mixed, "val", 2, np.random.default_rng(1))
    with pytest.raises(InputError, match=r"val/000.txt: a box label"):
        finetune_detector(str(pruned), write_yaml(tmp_path / "mixed.yaml", mixed), tmp_path / "out", epochs=1,
                          imgsz=SIDE)  # fmt: skip
    assert not (tmp_path / "out").exists()
    for f in (tmp_path / "labels" / "train").iterdir():
        f.write_text("")  # images without objects only
    shutil.rmtree(tmp_path / "labels" / "val")
    shutil.copytree(tmp_path / "labels" / "train", tmp_path / "labels" / "val")
    with pytest.raises(InputError, match="hold no polygon"):
        finetune_detector(str(pruned), boxes, tmp_path / "out", epochs=1, imgsz=SIDE)


def find_weights_or_skip(stem: str) -> Path:
    try:
        return find_yolo_weights(stem)
    except DataNotFoundError:
        pytest.skip(f"{stem}.pt is not in the data folder here")


def test_a_segmentation_yaml_starts_from_the_detection_checkpoint_but_its_mask_head(tmp_path, monkeypatch):
    weights = find_weights_or_skip("yolov8n").parent
    find_weights_or_skip("yolo11n")
    assert get_entry(SEG).has_pretrained
    with pytest.warns(UserWarning, match=r"detection checkpoint, loaded into every tensor but 53 of the Segment "
                      r"head's \(cv4, proto\)"):  # fmt: skip
        seg = create_model(SEG, pretrained=True)
    det = create_model("ultralytics:yolov8n.yaml", pretrained=True).state_dict()
    own = seg.state_dict()
    head = [k for k in own if k.startswith(("model.model.22.proto.", "model.model.22.cv4."))]
    assert len(head) == 62 and all(torch.equal(own[k], det[k]) for k in det)  # 9 of them batch counters
    assert seg.model.names == create_model("ultralytics:yolov8n.yaml", pretrained=True).model.names

    other = tmp_path / "pretrained" / "ultralytics"  # a data folder whose yolov8n.pt is another model
    other.mkdir(parents=True)
    shutil.copy(weights / "yolo11n.pt", other / "yolov8n.pt")
    monkeypatch.setenv("EDGEPRUNE_DATA", str(tmp_path))
    with pytest.raises(InputError, match="yolov8n.pt does not fit SegmentationModel"):
        create_model(SEG, pretrained=True)
    (other / "yolov8n.pt").unlink()
    assert not get_entry(SEG).has_pretrained


@pytest.mark.parametrize(("name", "detector", "fresh"), [("yolov8n-pose", "yolov8n", "cv3, cv4"),
                                                        ("yolo11n-obb", "yolo11n", "cv4")])  # fmt: skip
def test_a_pose_or_obb_yaml_starts_from_the_detection_checkpoint_where_the_shapes_agree(name, detector, fresh):
    source = re.escape(str(find_weights_or_skip(detector)))
    with pytest.warns(UserWarning, match=rf"{source}: a detection checkpoint, loaded into every tensor but \d+ of the "
                      rf"(Pose|OBB) head's \({fresh}\)"):  # fmt: skip
        model = create_model(f"ultralytics:{name}.yaml", pretrained=True)
    det = create_model(f"ultralytics:{detector}.yaml", pretrained=True).state_dict()
    own, head = model.state_dict(), f"model.model.{len(model.model.model) - 1}."
    body = [k for k in det if not k.startswith(head)]
    assert body and all(torch.equal(own[k], det[k]) for k in body)
    box = [k for k in det if k.startswith(head + "cv2.")]  # the box branch: the same shapes in every task
    assert box and all(torch.equal(own[k], det[k]) for k in box)
    if "cv3" in fresh:  # one class (a person) where the detector has 80: the class branch and names are its own
        assert own[head + "cv3.0.2.weight"].shape[0] == 1 and len(model.model.names) == 1
