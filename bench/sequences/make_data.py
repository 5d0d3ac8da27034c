"""Write CIFAR-10 as row sequences, one .npy file a sample: (96, 32) float16, feature 3*col + colour, step = row,
normalized by CIFAR's channel mean and std. Usage: python make_data.py CIFAR_JPEG_TAR OUT [--train N] [--val N]"""

import argparse
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

MEAN, STD = np.array([0.491, 0.482, 0.447]), np.array([0.247, 0.243, 0.262])


def as_sequence(jpeg: bytes) -> np.ndarray:
    x = (np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), np.float32) / 255 - MEAN) / STD  # (32, 32, 3)
    return x.reshape(32, 96).T.astype(np.float16)  # (features = 32 columns x 3 colours, steps = 32 rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tar")
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=1000, help="samples per class from the train split")
    parser.add_argument("--val", type=int, default=200, help="samples per class from the test split (val/)")
    args = parser.parse_args()
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(args.tar) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[-3] not in ("train", "test"):
                continue
            split, label = ("train" if parts[-3] == "train" else "val"), parts[-2]
            n = counts.get((split, label), 0)
            if n >= (args.train if split == "train" else args.val):
                continue
            counts[(split, label)] = n + 1
            (args.out / split / label).mkdir(parents=True, exist_ok=True)
            np.save(args.out / split / label / f"{n:04d}.npy", as_sequence(tar.extractfile(member).read()))
    print(f"wrote {sum(counts.values())} samples to {args.out}")


if __name__ == "__main__":
    main()
