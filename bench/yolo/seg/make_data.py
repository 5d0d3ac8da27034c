"""coco256 with its boxes written as rectangle polygons, for a segmentation model's pipeline run.

The data folder has no COCO masks: this writes OUT/labels/<split>/*.txt with each box as the 4-corner polygon
of the box (class x1 y1 x2 y1 x2 y2 x1 y2), links each image, and writes OUT.yaml. A mask metric on these
labels scores box-shaped masks: it measures the pipeline, not how well object outlines are found.
    python bench/yolo/seg/make_data.py ../shared/data/coco256 runs/yolo/coco256-seg
"""

from __future__ import annotations

import argparse
from pathlib import Path


def polygon(row: str) -> str:
    c, cx, cy, w, h = row.split()
    x1, x2 = float(cx) - float(w) / 2, float(cx) + float(w) / 2
    y1, y2 = float(cy) - float(h) / 2, float(cy) + float(h) / 2
    return f"{c} " + " ".join(f"{v:.6f}" for v in (x1, y1, x2, y1, x2, y2, x1, y2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="the coco256 folder (images/, labels/, coco256.yaml)")
    ap.add_argument("out", type=Path, help="the folder to write; OUT.yaml beside it")
    args = ap.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists: remove it or choose another folder")
    for split_dir in sorted((args.source / "images").iterdir()):
        split = split_dir.name
        (args.out / "images" / split).mkdir(parents=True)
        for image in sorted(split_dir.iterdir()):  # links per file: a linked folder would resolve to the source's
            (args.out / "images" / split / image.name).symlink_to(image.resolve())
        labels = args.out / "labels" / split
        labels.mkdir(parents=True)
        for f in sorted((args.source / "labels" / split).glob("*.txt")):
            rows = [polygon(r) for r in f.read_text().splitlines() if r.strip()]
            (labels / f.name).write_text("".join(r + "\n" for r in rows))
    text = (args.source / "coco256.yaml").read_text().splitlines()
    yaml = [f"path: {args.out.resolve()}" if s.startswith("path:") else s for s in text]
    args.out.with_suffix(".yaml").write_text("\n".join(yaml) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.yaml')}")


if __name__ == "__main__":
    main()
