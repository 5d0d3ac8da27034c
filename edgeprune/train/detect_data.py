"""Detection data sets as Ultralytics reads them: a dataset yaml naming a root (``path``), image folders or
list files (``train``, ``val``, ``test``) and the class ``names``; labels are YOLO text files in the
``labels/`` folder beside each ``images/`` folder.

edgeprune checks the yaml before Ultralytics sees it, so that a missing folder is a clear error before any
training (Ultralytics would otherwise run a ``download:`` entry, or train on images without labels), and
writes a resolved copy (absolute paths, no ``download``) that Ultralytics then reads. A relative ``path`` is
taken from the yaml's own folder (Ultralytics would look in its settings' datasets folder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeprune.atomic import atomic_write_text
from edgeprune.backends.quantize import require_count
from edgeprune.errors import DataNotFoundError, InputError, require
from edgeprune.models.ultralytics_models import _ultralytics

SPLITS = ("train", "val", "test")
KEYPOINT_KEYS = ("kpt_shape", "flip_idx", "kpt_names")  # what a pose dataset's yaml adds, passed on as it is
TASK_MODELS = {"segment": "a segmentation model", "pose": "a pose model", "obb": "an OBB model"}


def is_detection_data(data: str | os.PathLike) -> bool:
    """Whether ``--data`` names a dataset yaml (what a detector trains and evaluates on)."""
    return Path(data).suffix.lower() in (".yaml", ".yml")


def check_data_kind(model: str, detector: bool, data: str | os.PathLike) -> bool:
    """Whether ``model`` (a detector when ``detector``) is scored on detection data; an :class:`InputError` when
    the model and ``data`` disagree: a detector reads a dataset yaml, a classifier anything else."""
    yaml_data = is_detection_data(data)
    if detector and not yaml_data:
        raise InputError(f"{model} is an Ultralytics detector: --data must be a dataset yaml (path, train, val, "
                         f"names), not {data}")  # fmt: skip
    if yaml_data and not detector:
        raise InputError(f"--data {data} is a detection dataset yaml: MODEL must be an Ultralytics detector "
                         "(ultralytics:<yaml or .pt>, or a folder saved from one)")  # fmt: skip
    return detector


@dataclass(frozen=True)
class DetectionData:
    """A checked dataset yaml: its root, the image sources of each split it names, the class names."""

    source: Path
    root: Path
    splits: dict[str, list[Path]]
    names: dict[int, str]
    images: dict[str, int]  # images found per checked split
    keypoints: dict = field(default_factory=dict)  # a pose dataset's kpt_shape (and flip_idx), as the yaml has them

    @property
    def kpt_shape(self) -> list[int] | None:
        return self.keypoints.get("kpt_shape")

    @property
    def nc(self) -> int:
        return len(self.names)

    def write(self, path: str | os.PathLike) -> Path:
        """The resolved yaml that Ultralytics reads (absolute paths; nothing to download)."""
        yaml = require("yaml", "ultralytics")  # PyYAML comes with Ultralytics
        doc = {"path": str(self.root), "names": self.names, **self.keypoints}
        for split, sources in self.splits.items():
            doc[split] = str(sources[0]) if len(sources) == 1 else [str(s) for s in sources]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, yaml.safe_dump(doc, sort_keys=False))
        return out


def check_detection_data(data_yaml: str | os.PathLike, splits: tuple[str, ...] = ("train", "val"),
                         labels: bool = True) -> DetectionData:  # fmt: skip
    """Read and check a dataset yaml: every split in ``splits`` exists and holds images (and, with
    ``labels``, has its ``labels/`` folder). Errors name the path that is missing."""
    utils = _ultralytics("data.utils")  # first: without the extra nothing below can run
    yaml = require("yaml", "ultralytics")
    source = Path(data_yaml).expanduser()
    if not source.is_file():
        raise DataNotFoundError(f"dataset yaml {source} does not exist")
    try:
        doc = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{source}: expected a mapping with path, train, val and names (Ultralytics' dataset yaml)")
    names = _names(doc, source)
    root = _root(doc, source)
    found: dict[str, list[Path]] = {}
    counts: dict[str, int] = {}
    for split in SPLITS:  # every split is resolved (Ultralytics wants train: and val:); those asked are checked
        entry = doc.get(split)
        if entry:
            found[split] = [(root / str(e)).resolve() for e in (entry if isinstance(entry, list) else [entry])]
        elif split in splits:
            raise InputError(f"{source}: no '{split}:' entry (the {split} images, relative to path: {root})")
    for split in splits:
        counts[split] = sum(_check_source(p, split, source, labels, utils) for p in found[split])
    return DetectionData(source, root, found, names, counts, _keypoints(doc, source))


def check_task_labels(data: DetectionData, split: str, task: str) -> None:
    """An :class:`InputError` naming the first label file of ``split`` whose rows a ``task`` model cannot read,
    or saying that the split holds none it can. Segmentation and OBB models read polygons (``class x1 y1 x2 y2
    x3 y3 ...``, normalized; OBB: the four corners), where Ultralytics would silently drop every polygon of a
    split that mixes them with boxes; a pose model reads a box and its keypoints (``class cx cy w h`` then
    ``kpt_shape`` values per object), where Ultralytics would drop the file. Detection reads every label."""
    if task == "detect":
        return
    if task == "pose" and not data.kpt_shape:
        raise InputError(f"{data.source}: no 'kpt_shape:' entry (keypoints per object and values per keypoint, "
                         "e.g. [17, 3]): a pose model's data names them")  # fmt: skip
    utils = _ultralytics("data.utils")
    images = [str(f) for source in data.splits[split] for f in _image_files(source, utils)]
    kind = "keypoint" if task == "pose" else "polygon"
    found = 0
    for path in map(Path, utils.img2label_paths(images)):
        rows = [r.split() for r in path.read_text().splitlines() if r.strip()] if path.is_file() else []
        if task == "pose":
            width = 5 + int(np.prod(data.kpt_shape))
            wrong = [r for r in rows if len(r) != width]
            need = f"{width} values a row (class cx cy w h, then kpt_shape {data.kpt_shape} keypoint values)"
        else:
            wrong = [r for r in rows if len(r) <= 5]
            need = "polygon labels, class x1 y1 x2 y2 x3 y3 ... (normalized)"
        if wrong:
            shown = " ".join(wrong[0][:8]) + (" ..." if len(wrong[0]) > 8 else "")
            what = "a box label" if len(wrong[0]) == 5 else f"a row of {len(wrong[0])} values"
            raise InputError(f"{path}: {what} ({shown}); {TASK_MODELS[task]} needs {need}")
        found += len(rows)
    if not found:
        raise InputError(f"the {split} labels of {data.source} hold no {kind}: {TASK_MODELS[task]} needs them")


def _keypoints(doc: dict, source: Path) -> dict:
    """The yaml's keypoint entries (a pose dataset's), checked: ``kpt_shape`` is [keypoints, 2 or 3]."""
    found = {k: doc[k] for k in KEYPOINT_KEYS if doc.get(k) is not None}
    shape = found.get("kpt_shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape)
                                  and shape[0] > 0 and shape[1] in (2, 3)):  # fmt: skip
        raise InputError(f"{source}: kpt_shape: {shape}; expected [keypoints, 2 or 3] (x, y and, with 3, visibility)")
    return found


def _names(doc: dict, source: Path) -> dict[int, str]:
    names, nc = doc.get("names"), doc.get("nc")
    if isinstance(names, dict):
        return {int(k): str(v) for k, v in sorted(names.items(), key=lambda kv: int(kv[0]))}
    if isinstance(names, list):
        return dict(enumerate(map(str, names)))
    if isinstance(nc, int) and nc > 0:
        return {i: f"class_{i}" for i in range(nc)}
    raise InputError(f"{source}: no class 'names:' (or 'nc:') entry")


def _root(doc: dict, source: Path) -> Path:
    given = doc.get("path")
    root = source.parent if not given else Path(str(given)).expanduser()
    root = (source.parent / root).resolve() if not root.is_absolute() else root
    if not root.is_dir():
        raise DataNotFoundError(f"dataset root {root} (path: in {source}) does not exist: set path: to the data "
                                "folder (absolute, or relative to the yaml's folder)")  # fmt: skip
    return root


def _check_source(path: Path, split: str, source: Path, labels: bool, utils) -> int:
    """How many images ``path`` (a folder, or a text file listing images) holds; errors when none or no labels."""
    if not path.exists():
        raise DataNotFoundError(f"{split} images {path} (from {source}) do not exist")
    images = _image_files(path, utils)
    if not images:
        raise DataNotFoundError(f"no images in {path} ({split} split of {source})")
    label_dir = Path(utils.img2label_paths([str(images[0])])[0]).parent
    if labels and not label_dir.is_dir():
        raise DataNotFoundError(f"no labels folder {label_dir} for the {split} images {path} (YOLO layout: "
                                "<root>/images/<split>/x.jpg with <root>/labels/<split>/x.txt)")  # fmt: skip
    return len(images)


def _image_files(path: Path, utils) -> list[Path]:
    """The images of a split source: a folder (searched recursively) or a text file listing them."""
    if path.is_dir():
        return [p for p in sorted(path.rglob("*")) if p.suffix[1:].lower() in utils.IMG_FORMATS]
    lines = [s.strip() for s in path.read_text().splitlines() if s.strip()]
    return [Path(s) if Path(s).is_absolute() else (path.parent / s) for s in lines]


def detection_images(data_yaml: str | os.PathLike, count: int, side: int, seed: int = 0) -> np.ndarray:
    """``count`` train images of a dataset yaml (a seeded draw), RGB in [0, 1], resized to ``side`` square
    (N, 3, side, side float32): what a detector's channels are calibrated on (labels are not needed)."""
    data = check_detection_data(data_yaml, ("train",), labels=False)
    utils = _ultralytics("data.utils")
    files = [f for source in data.splits["train"] for f in _image_files(source, utils)]
    require_count(len(files), count, f"the train split of {data.source}")
    return square_images([files[i] for i in np.sort(np.random.default_rng(seed).permutation(len(files))[:count])],
                         side)  # fmt: skip


def square_images(files: list[Path], side: int) -> np.ndarray:
    """``files`` as a detector reads them: RGB in [0, 1], resized to ``side`` square (N, 3, side, side float32)."""
    from edgeprune.train.folder import open_rgb

    arrays = [np.asarray(open_rgb(f).resize((side, side)), dtype=np.float32) / 255 for f in files]
    return np.stack(arrays).transpose(0, 3, 1, 2).copy()
