"""Image folders as --data: layouts, the deterministic split, bad data and its messages, mode conversion, any
input size, reproducible augmentation, DDP sharding, the trainer on any loader, and train -> prune -> eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from edgeprune.cli import main
from edgeprune.models import create_model
from edgeprune.train.data import epoch_batches
from edgeprune.train.folder import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataError,
    FolderLoader,
    folder_transform,
    scan_folder,
    split_classes,
)
from edgeprune.train.sources import Source, keep_matching, load_for_data
from edgeprune.train.trainer import evaluate

CLASSES = ("cat", "dog", "eel")


def write_images(folder: Path, n: int, size=(40, 48), seed: int = 0, suffix: str = ".jpg") -> list[Path]:
    """``n`` random RGB images of (height, width) ``size``, alternating JPEG and PNG unless ``suffix`` says."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}{suffix if suffix != '.jpg' or i % 2 == 0 else '.png'}"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def make_folder(root: Path, n_train: int = 6, n_val: int = 2, classes=CLASSES, split: bool = True) -> Path:
    for k, c in enumerate(classes):
        if split:
            write_images(root / "train" / c, n_train, seed=k)
            write_images(root / "val" / c, n_val, size=(52, 36), seed=100 + k)
        else:
            write_images(root / c, n_train, seed=k)
    return root


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_train_val_layout_labels_are_the_sorted_class_folders(tmp_path):
    (tmp_path / "f" / "train" / "eel" / "notes.txt").parent.mkdir(parents=True)
    root = make_folder(tmp_path / "f", classes=("eel", "cat", "dog"))
    (root / "train" / "eel" / "notes.txt").write_text("not an image: ignored")
    write_images(root / "train" / "eel" / ".ipynb_checkpoints", 2)  # hidden: ignored
    data = scan_folder(root)
    assert data.classes == CLASSES and data.notes == ()
    assert len(data.train) == 18 and len(data.val) == 6
    for files, labels in ((data.train.files, data.train.labels), (data.val.files, data.val.labels)):
        assert [CLASSES[k] for k in labels] == [Path(f).parent.name for f in files]


def test_a_root_of_class_folders_is_split_the_same_way_every_time_and_says_so(tmp_path):
    root = make_folder(tmp_path / "f", n_train=20, split=False)
    a, b = scan_folder(root), scan_folder(root)
    assert a == b
    assert len(a.val) == 6 and len(a.train) == 54  # 10 % of each class's 20
    assert set(a.train.files).isdisjoint(a.val.files) and len(set(a.train.files) | set(a.val.files)) == 60
    assert sorted(a.val.labels) == [0, 0, 1, 1, 2, 2]
    assert len(a.notes) == 1 and "no val/ folder: split" in a.notes[0] and "54 train, 6 val" in a.notes[0]
    # a class's split depends on its own files only: adding a class moves nobody else
    write_images(root / "fox", 20, seed=9)
    c = scan_folder(root)
    assert {f for f in c.val.files if "/fox/" not in f} == set(a.val.files)
    # one image: it trains; two: one of them validates
    train, val = split_classes({"a": [Path("x")], "b": [Path("y"), Path("z")]})
    assert (len(train["a"]), len(val["a"]), len(train["b"]), len(val["b"])) == (1, 0, 1, 1)


def test_the_split_is_told_on_stderr_and_recorded_with_the_run(tmp_path):
    root = make_folder(tmp_path / "f", split=False, classes=tuple(str(k) for k in range(10)))
    r = cli("train", "tiny_nets:plain_cnn", "--data", root, "--input-size", 16, "--epochs", 1, "--max-steps", 1,
            "--batch-size", 4, "--workers", 0, "--reg", "none", "--out", tmp_path / "run")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "note: " in r.stderr and "split" in r.stderr and "note" not in r.stdout
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["classes"] == [str(k) for k in range(10)] and run["input_size"] == [16, 16]
    assert "split" in run["data_notes"][0]


def _corrupt(path: Path) -> None:
    path.write_bytes(b"this is not an image")


BAD = {
    "empty root": (lambda r: r.mkdir(), "is empty: expected"),
    "empty class folder": (lambda r: (make_folder(r), (r / "val" / "fox").mkdir(), (r / "train" / "fox").mkdir()),
                           "class folders with no images in"),
    "no images at all": (lambda r: [(r / c).mkdir(parents=True) or (r / c / "a.txt").write_text("x") for c in CLASSES],
                         "no images in"),
    "images without class folders": (lambda r: write_images(r, 3), "holds images but no class folders"),
    "classes differ": (lambda r: (make_folder(r), write_images(r / "val" / "fox", 2),
                                  write_images(r / "train" / "gnu", 2)), "only in train/: gnu; only in val/: fox"),
    "val without train": (lambda r: write_images(r / "val" / "cat", 2), "has val/ but no train/"),
    "unreadable above 1 %": (lambda r: (make_folder(r), _corrupt(r / "train" / "dog" / "002.jpg")),
                             "1 of 24 images in"),
    "16-bit images": (lambda r: (make_folder(r), Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(
        r / "train" / "cat" / "deep.png")), "16-bit or float (mode I"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_data_is_a_clear_error_through_the_cli(case, tmp_path):
    make, message = BAD[case]
    root = tmp_path / "f"
    make(root)
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        scan_folder(root)
    r = cli("eval", "cifar_resnet20", "--data", root)
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and message in r.output and "Traceback" not in r.output


def test_data_that_is_neither_a_name_nor_a_folder(tmp_path):
    r = cli("eval", "cifar_resnet20", "--data", "cifar100")
    assert r.exit_code == 1 and "unknown dataset 'cifar100'" in r.output and "image folder" in r.output
    r = cli("eval", "cifar_resnet20", "--data", tmp_path / "missing")
    assert r.exit_code == 1 and "does not exist" in r.output


def test_a_few_unreadable_images_are_skipped_and_counted(tmp_path):
    root = tmp_path / "f"
    for c in CLASSES:
        write_images(root / c, 40, size=(8, 8), suffix=".png")
    _corrupt(root / "dog" / "007.png")
    (root / "cat" / "003.png").write_bytes(b"")
    with pytest.raises(DataError, match="2 of 120 images"):  # 2 > 1 % of 120
        scan_folder(root)
    write_images(root / "eel", 120, size=(8, 8), suffix=".png")  # 200 files: 2 bad is 1 %
    data = scan_folder(root)
    assert len(data.train) + len(data.val) == 198
    assert not any(f.endswith(("dog/007.png", "cat/003.png")) for f in data.train.files + data.val.files)
    assert any(n.startswith("skipped 2 unreadable image(s) of 200") for n in data.notes)


def test_images_of_other_modes_are_converted_to_rgb(tmp_path):
    root = tmp_path / "f"
    values = {"gray": ("L", 100), "alpha": ("RGBA", (100, 100, 100, 7)), "cmyk": ("CMYK", (0, 0, 0, 155)),
              "palette": ("P", 3)}  # fmt: skip
    for name, (mode, value) in values.items():
        (root / name).mkdir(parents=True)
        img = Image.new(mode, (30, 20), value)
        if mode == "P":
            img.putpalette([100, 100, 100] * 256)
        img.save(root / name / f"a.{'jpg' if mode == 'CMYK' else 'png'}")
        img.save(root / name / f"b.{'jpg' if mode == 'CMYK' else 'png'}")
    data = scan_folder(root)
    note = next(n for n in data.notes if "not RGB" in n)
    assert "2 CMYK" in note and "2 L" in note and "2 P" in note and "2 RGBA" in note and "converted to RGB" in note
    loader = FolderLoader(data.val, folder_transform((12, 12), IMAGENET_MEAN, IMAGENET_STD, False), 8, False, workers=0)
    ((x, y),) = list(loader)
    assert x.shape == (4, 3, 12, 12)
    # every image is a flat gray 100 (CMYK's K=155 is 255 - 155): normalized per channel
    expected = (100 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(x, expected.view(1, 3, 1, 1).expand_as(x), atol=0.02)


def test_any_input_size_and_reproducible_augmentation(tmp_path):
    data = scan_folder(make_folder(tmp_path / "f"))
    for size in ((64, 64), (48, 80)):
        loader = FolderLoader(data.train, folder_transform(size, IMAGENET_MEAN, IMAGENET_STD, True), 4, True, seed=1,
                              workers=0)  # fmt: skip
        x, y = next(loader.epoch(0))
        assert x.shape == (4, 3, *size) and x.dtype == torch.float32 and y.dtype == torch.int64
    train = folder_transform((32, 32), IMAGENET_MEAN, IMAGENET_STD, True)
    a = FolderLoader(data.train, train, 4, True, seed=1, workers=0)
    b = FolderLoader(data.train, train, 4, True, seed=1, workers=1)  # another process draws the crops
    first, second = [x for x, _ in a.epoch(2)][:2]
    assert torch.equal(next(b.epoch(2))[0], first)
    assert torch.equal(next(a.epoch(2, skip=1))[0], second)  # a resume mid-epoch sees the same batch
    assert not torch.equal(next(a.epoch(3))[0], first)
    assert len(a) == 4  # 18 images: the last partial batch is dropped in training
    ev = FolderLoader(data.val, folder_transform((32, 32), IMAGENET_MEAN, IMAGENET_STD, False), 4, False, workers=0)
    assert len(ev) == 2 and sum(len(y) for _, y in ev) == 6


def test_ranks_read_disjoint_shards_that_cover_the_split_and_reshuffle_per_epoch(tmp_path):
    data = scan_folder(make_folder(tmp_path / "f", n_train=8))  # 24 images
    transform = folder_transform((16, 16), IMAGENET_MEAN, IMAGENET_STD, True)
    ranks = [FolderLoader(data.train, transform, 4, True, seed=5, rank=r, world=3, workers=0) for r in range(3)]
    for epoch in (0, 1):
        shards = [set(r.indices(epoch)) for r in ranks]
        assert all(len(s) == 8 for s in shards) and set.union(*shards) == set(range(24))
        assert sum(map(len, shards)) == 24  # disjoint
        assert all(len(r) == 2 for r in ranks)
    assert ranks[0].indices(0) != ranks[0].indices(1)
    # the ranks' first batches together are one process's first batch of 12
    one = FolderLoader(data.train, transform, 12, True, seed=5, workers=0)
    assert sorted(one.indices(0)[:12]) == sorted(i for r in ranks for i in r.indices(0)[:4])


def test_the_trainer_and_evaluate_take_any_loader_of_batches():
    x, y = torch.randn(12, 3, 8, 8), torch.arange(12) % 2
    sampler = DistributedSampler(TensorDataset(x, y), num_replicas=1, rank=0, shuffle=True, seed=0)
    loader = DataLoader(TensorDataset(x, y), batch_size=4, sampler=sampler)
    batches = list(epoch_batches(loader, 3, skip=1))
    assert sampler.epoch == 3 and len(batches) == 2
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
    expected = float((model(x).argmax(1) == y).float().mean())
    assert evaluate(model, loader, torch.device("cpu")) == pytest.approx(expected)


def test_a_registry_model_gets_the_folders_class_count_and_keeps_pretrained_weights(tmp_path):
    source = Source.open(str(make_folder(tmp_path / "f")), 32)
    model, name, kwargs, _ = load_for_data("cifar_resnet20", False, source)
    assert kwargs == {"num_classes": 3} and model.linear.out_features == 3
    pretrained, fresh = create_model("cifar_resnet20"), create_model("cifar_resnet20", num_classes=3)
    assert keep_matching(pretrained, fresh) == ["linear.bias", "linear.weight"]
    assert torch.equal(fresh.conv1.weight, pretrained.conv1.weight)
    # a new head for torchvision's MNASNet, whose loader refuses a state without its module version
    mnas, mnas_fresh = create_model("mnasnet0_5"), create_model("mnasnet0_5", num_classes=3)
    assert keep_matching(mnas, mnas_fresh) == ["classifier.1.bias", "classifier.1.weight"]
    assert torch.equal(mnas_fresh.layers[0].weight, mnas.layers[0].weight)
    # a saved model must already answer the folder's classes
    r = cli("eval", "cifar_resnet20", "--data", source.data)
    assert r.exit_code == 1 and "answers 10 classes but" in r.output and "has 3 class folders" in r.output


def test_a_file_that_only_fails_when_decoded_names_itself(tmp_path):
    root = make_folder(tmp_path / "f")
    path = root / "val" / "dog" / "000.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # the header reads, the pixels do not
    data = scan_folder(root)
    for workers in (0, 1):
        loader = FolderLoader(data.val, folder_transform((16, 16), IMAGENET_MEAN, IMAGENET_STD, False), 8, False,
                              workers=workers)  # fmt: skip
        with pytest.raises(DataError) as caught:
            list(loader)
        assert str(caught.value).startswith(f"cannot decode {path}") and "Traceback" not in str(caught.value)


def test_folder_options_and_named_data_sets_exclude_each_other(tmp_path):
    root = make_folder(tmp_path / "f")
    r = cli("eval", "cifar_resnet20", "--data", "cifar10", "--input-size", 64)
    assert r.exit_code == 2 and "--input-size cannot be used with --data cifar10" in r.output
    r = cli("train", "cifar_resnet20", "--data", root, "--data-dir", tmp_path, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "--data-dir cannot be used with an image folder" in r.output


def test_train_prune_eval_on_an_image_folder(tmp_path):
    folder, run, pruned = make_folder(tmp_path / "f"), tmp_path / "run", tmp_path / "pruned"
    r = cli("train", "mobilenet_v3_small", "--data", folder, "--input-size", 64, "--epochs", 1, "--max-steps", 2,
            "--batch-size", 4, "--out", run)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads((run / "model" / "arch.json").read_text())["model_kwargs"] == {"num_classes": 3}
    assert json.loads((run / "run.json").read_text())["input_size"] == [64, 64]
    r = cli("prune", run, "--ratio", "0.3", "--out", pruned)
    assert r.exit_code == 0, r.output
    r = cli("eval", pruned, "--data", folder, "--input-size", 64, "--json")
    assert r.exit_code == 0, r.output
    top1 = json.loads(r.stdout)["top1"]
    assert top1 * 6 == pytest.approx(round(top1 * 6))  # a count of the 6 val images
    r = cli("eval", pruned, "--data", folder)  # at the model's own input size (224)
    assert r.exit_code == 0 and "on " + str(folder) + " test" in r.output


def test_a_timm_model_trains_with_oicsr_on_a_folder_then_prunes_and_evaluates(tmp_path):
    folder = make_folder(tmp_path / "f")
    run, pruned = tmp_path / "run", tmp_path / "p"
    r = cli("train", "timm:lcnet_050", "--data", folder, "--input-size", "64", "--reg", "oicsr", "--epochs", "1",
            "--max-steps", "2", "--batch-size", "4", "--out", run)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads((run / "run.json").read_text())["model"] == "timm:lcnet_050"
    r = cli("prune", run, "--target", "cpu-ort", "--macs", "0.7x", "--out", pruned, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads((pruned / "plan_result.json").read_text())["importance"].startswith("oicsr")
    r = cli("eval", pruned / "model", "--data", folder, "--input-size", "64", "--json")
    assert r.exit_code == 0, r.output
    top1 = json.loads(r.output)["top1"]  # counted over the folder's 3 x 2 val images, no more, no fewer
    assert 0.0 <= top1 <= 1.0 and abs(top1 * 6 - round(top1 * 6)) < 1e-9
