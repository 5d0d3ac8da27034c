"""Build an ImageFolder (ROOT/train/<class>/*.jpg, ROOT/val/<class>/*.jpg) from the data in ../shared/data.

    python tools/make_imagefolder.py runs/coco-folder                      # real photos (default)
    python tools/make_imagefolder.py runs/cifar-folder --source cifar10 --train 100 --val 20 --size 224

``coco`` (default): the 256 COCO photos at their own size (about 640x480), each labelled by the category of its
largest box; the classes are the most common such labels (images of other labels are left out). train/ is
train2017 (coco128), val/ is the 128 val2017 images: no photo is in both. This is what a user's folder costs
to read: a full-size JPEG decoded and resized per image. Classes are few and uneven: for throughput, not
for accuracy.

``cifar10``: balanced classes from the CIFAR-10 JPEG tarball, N train and M val images per class (from its
train/ and test/ folders), upscaled to --size and saved as JPEG: a user's 224² folder in size, but blurry.

The folder is data: write it under runs/ (ignored by git), never into the project.
"""

from __future__ import annotations

import argparse
import io
import tarfile
from collections import Counter
from pathlib import Path

from PIL import Image

from edgeprune.paths import data_root, looked_in
from edgeprune.train.data import JPEG_TARBALL


def largest_label(label_file: Path) -> int | None:
    """The class of the largest box in a YOLO label file (``class cx cy w h``, normalized), or None."""
    best, area = None, 0.0
    for line in label_file.read_text().splitlines():
        parts = line.split()
        if len(parts) == 5 and float(parts[3]) * float(parts[4]) > area:
            best, area = int(parts[0]), float(parts[3]) * float(parts[4])
    return best


def coco_names(root: Path) -> dict[int, str]:
    names, inside = {}, False
    for line in (root / "coco256.yaml").read_text().splitlines():
        inside = inside or line.startswith("names:")
        key, _, value = line.strip().partition(":")
        if inside and key.isdigit():
            names[int(key)] = value.strip().replace(" ", "_")
    return names


def build_coco(data: Path, out: Path, classes: int) -> dict[str, Counter]:
    root = data / "coco256"
    names = coco_names(root)
    labels = {split: {img: largest_label(root / "labels" / split / f"{img.stem}.txt")
                      for img in sorted((root / "images" / split).glob("*.jpg"))
                      if (root / "labels" / split / f"{img.stem}.txt").is_file()}
              for split in ("train2017", "val2017")}  # fmt: skip
    # classes that both splits hold, most common first
    counts = Counter(k for split in labels.values() for k in split.values() if k is not None)
    both = [k for k, _ in counts.most_common() if all(k in split.values() for split in labels.values())]
    kept = both[:classes]
    made: dict[str, Counter] = {}
    for split, target in (("train2017", "train"), ("val2017", "val")):
        made[target] = Counter()
        for img, k in labels[split].items():
            if k in kept:
                folder = out / target / names[k]
                folder.mkdir(parents=True, exist_ok=True)
                (folder / img.name).write_bytes(img.read_bytes())  # the photo as it is, not re-encoded
                made[target][names[k]] += 1
    return made


def build_cifar(data: Path, out: Path, n_train: int, n_val: int, size: int) -> dict[str, Counter]:
    wanted = {"train": n_train, "test": n_val}
    made = {"train": Counter(), "val": Counter()}
    with tarfile.open(data / JPEG_TARBALL) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not (member.isfile() and member.name.endswith(".jpg") and len(parts) >= 3):
                continue
            split, cls = parts[-3], parts[-2]
            target = "val" if split == "test" else "train"
            if split not in wanted or made[target][cls] >= wanted[split]:
                continue
            image = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
            folder = out / target / cls
            folder.mkdir(parents=True, exist_ok=True)
            image.resize((size, size), Image.BICUBIC).save(folder / parts[-1], quality=90)
            made[target][cls] += 1
    return made


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the folder to create (under runs/)")
    ap.add_argument("--source", choices=["coco", "cifar10"], default="coco")
    ap.add_argument("--classes", type=int, default=8, help="coco: how many of the most common labels")
    ap.add_argument("--train", type=int, default=100, help="cifar10: train images per class")
    ap.add_argument("--val", type=int, default=20, help="cifar10: val images per class")
    ap.add_argument("--size", type=int, default=224, help="cifar10: side the 32x32 images are upscaled to")
    ap.add_argument("--data-dir", default=None, help="default: $EDGEPRUNE_DATA, else ../shared/data")
    args = ap.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        ap.error(f"{args.out} exists and is not empty")
    data = data_root(args.data_dir)
    if data is None:
        ap.error(f"no data folder found; looked in {looked_in()}")
    if args.source == "coco":
        made = build_coco(data, args.out, args.classes)
    else:
        made = build_cifar(data, args.out, args.train, args.val, args.size)
    for split, counts in made.items():
        print(f"{split}: {sum(counts.values())} images, {len(counts)} classes: "
              + ", ".join(f"{c} {n}" for c, n in sorted(counts.items())))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
