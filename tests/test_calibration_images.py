"""Calibration images from the user's own images: a plain folder (no class folders, no labels) is enough, and a
detector reads its images as it is evaluated (RGB in [0, 1]), whatever the folder's layout."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from test_data import write_images

from edgeprune.backends import CalibrationError
from edgeprune.cli import main
from edgeprune.models import create_model
from edgeprune.train.calibration import calibration_images
from edgeprune.train.detect_data import square_images


def test_a_plain_folder_of_images_calibrates_a_classifier(tmp_path):
    bag = tmp_path / "bag"
    write_images(bag, 10)
    model = create_model("cifar_resnet20").eval()
    images = calibration_images(str(bag), 8, model, "cifar_resnet20")
    assert images.shape == (8, 3, 32, 32) and images.dtype == np.float32
    assert images.min() < 0 < images.max()  # normalized with the model's mean and std, as it is evaluated
    with pytest.raises(CalibrationError, match=f"calibration needs 20 images but {bag} has 10"):
        calibration_images(str(bag), 20, model, "cifar_resnet20")


def test_a_one_channel_model_reads_its_images_in_grayscale_and_trains_on_a_folder(tmp_path):
    from test_data import cli, make_folder

    bag = tmp_path / "bag"
    write_images(bag, 10)
    model = create_model("tiny_nets:gray_cnn").eval()  # its factory declares input_size = (1, 40, 40)
    images = calibration_images(str(bag), 8, model, "tiny_nets:gray_cnn")
    assert images.shape == (8, 1, 40, 40) and images.min() < 0 < images.max()
    folder = make_folder(tmp_path / "folder", classes=("cat", "dog"))  # gray_cnn answers 2 classes
    r = cli("train", "tiny_nets:gray_cnn", "--data", folder, "--max-steps", "2", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("layout", ["plain", "classes"])
def test_a_detector_calibrates_on_any_folder_as_it_reads_images(tmp_path, layout):
    root = tmp_path / "images"
    files = write_images(root if layout == "plain" else root / "cat", 6)
    images = calibration_images(str(root), 6, None, "ultralytics:yolov8n.yaml", 64)
    assert images.shape == (6, 3, 64, 64) and 0 <= images.min() and images.max() <= 1
    np.testing.assert_array_equal(images, square_images(sorted(files), 64))


def test_a_detector_calibrates_alike_on_a_folder_and_on_a_dataset_yaml_of_the_same_images(tmp_path):
    train = tmp_path / "images" / "train"
    write_images(train, 9)
    yaml = tmp_path / "data.yaml"
    yaml.write_text(f"path: {tmp_path}\ntrain: images/train\nval: images/train\nnames:\n  0: thing\n")
    from_yaml = calibration_images(str(yaml), 5, None, "ultralytics:yolov8n.yaml", 64)
    np.testing.assert_array_equal(calibration_images(str(train), 5, None, "ultralytics:yolov8n.yaml", 64), from_yaml)
    with pytest.raises(CalibrationError, match=f"calibration needs 10 images but the train split of {yaml} has 9"):
        calibration_images(str(yaml), 10, None, "ultralytics:yolov8n.yaml", 64)


def test_export_to_int8_calibrates_on_a_plain_folder_and_a_short_one_writes_nothing(tmp_path):
    bag, pruned, out = tmp_path / "bag", tmp_path / "pruned", tmp_path / "m.int8.onnx"
    write_images(bag, 8)
    r = CliRunner().invoke(main, ["prune", "cifar_resnet20", "--target", "cpu-ort", "--macs", "0.7x",
                                  "--out", str(pruned)])  # fmt: skip
    assert r.exit_code == 0, r.output
    short = CliRunner().invoke(main, ["export", str(pruned), "--target", "cpu-ort-int8", "--calibration-data",
                                      str(bag), "--calibration-count", "9", "--out", str(out)])  # fmt: skip
    assert short.exit_code == 1 and "calibration needs 9 images" in short.output and not out.exists()
    r = CliRunner().invoke(main, ["export", str(pruned), "--target", "cpu-ort-int8", "--calibration-data", str(bag),
                                  "--calibration-count", "8", "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 0 and "calibrated on 8 images" in r.output


def test_a_model_that_is_not_square_calibrates_and_validates_at_its_own_height_and_width(tmp_path):
    from test_data import cli, make_folder

    from edgeprune.targets import target_from_dict
    from edgeprune.validation import resolve_model, validate

    folder = make_folder(tmp_path / "folder", classes=("cat", "dog"))  # wide_cnn answers 2 classes at 24 x 40
    r = cli("graph", "tiny_nets:wide_cnn")
    assert r.exit_code == 0 and "input (1, 3, 24, 40)" in r.output  # traced at its own shape (was 24 x 24)
    r = cli("prune", "tiny_nets:wide_cnn", "--ratio", "0.5", "--calibration-data", folder, "--calibration-count", 8,
            "--out", tmp_path / "p")
    assert r.exit_code == 0, r.output
    target = target_from_dict("fast-int8", {"backend": "onnxruntime", "precision": "int8", "calibration_count": 8,
                                            "threads": 1, "warmup": 1, "repeats": 2, "rounds": 2})  # fmt: skip
    report = validate(resolve_model("tiny_nets:wide_cnn"), resolve_model(str(tmp_path / "p" / "model")), target,
                      tmp_path / "v", data=str(folder))  # fmt: skip
    # both models timed, calibrated and scored at 24 x 40: square calibration images were refused before
    assert report["original"]["input_shape"] == report["pruned"]["input_shape"] == [1, 3, 24, 40]
    assert report["pruned"]["calibration"]["count"] == 8 and report["pruned"]["deployed_accuracy"] is not None
