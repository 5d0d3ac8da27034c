"""Ultralytics YOLO detectors by reference: ``ultralytics:<file>`` (the ``ultralytics`` extra, AGPL-3.0).

``<file>`` is an architecture yaml that Ultralytics builds (``yolov8n.yaml``, ``yolo11s.yaml``,
``yolov8n-seg.yaml``, ``yolov8n-pose.yaml``, ``yolo11n-obb.yaml``, any scale letter; or a path to a yaml of
your own), or a ``.pt`` checkpoint that Ultralytics wrote. A yaml builds with random weights;
``pretrained=True`` then loads ``<data folder>/pretrained/ultralytics/<stem>.pt``; for a segmentation, pose or
OBB yaml (``yolov8n-seg.yaml``, ``yolov8n-pose.yaml``) without its own weights there, the detection checkpoint
of the same model (``yolov8n.pt``) fills the backbone, the neck and the head tensors of the same shape, and the
rest of the head (mask prototypes and coefficients, keypoints, angles, another number of classes) starts
random: train it before use. A checkpoint is loaded by Ultralytics' own loader with its allow-list
(``weights_only`` unpickling of the known Ultralytics and torch classes): only load a checkpoint you trust,
such as your own.

The model is a :class:`YoloRaw`: it holds the Ultralytics ``DetectionModel`` (``.model``, unchanged and
usable with Ultralytics) and its forward returns the head's raw outputs, the tensor every later stage
(oracle, ONNX, latency) compares. Decoding (DFL, anchors) stays in Ultralytics' own ``model.model(x)``.
``ultralytics`` is imported on first use, never by ``import edgeprune``.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from edgeprune.errors import DataNotFoundError, InputError, MissingError, require
from edgeprune.logs import quiet
from edgeprune.models.registry import ModelEntry, register_prefix
from edgeprune.models.ultralytics_heads import ANCHOR_HEADS, DENSE_HEADS, proto26_forward, raw_head
from edgeprune.models.weights import check_state, load_state, load_versioned
from edgeprune.paths import data_root, looked_in

PREFIX = "ultralytics:"
FAMILY = "ultralytics"  # the registry family of every Ultralytics detector
CLS_FAMILY = "ultralytics-cls"  # Ultralytics classifiers (yolov8n-cls.yaml): edgeprune's classifier pipeline
INPUT_SIZE, CLS_INPUT_SIZE = (3, 640, 640), (3, 224, 224)
TEST_SIZE = 128  # the smallest side whose P5 map (stride 32) is still 4 x 4
CLS_SUFFIX = "-cls"  # Ultralytics' name for a classifier's yaml and weights
# Checked by tests/test_ultralytics.py and the slow model matrix (random non-uniform plans against the
# oracle); any other Ultralytics detection, segmentation, pose or OBB yaml or checkpoint with a head below builds too.
CHECKED = ["yolov8n.yaml", "yolo11n.yaml", "yolov8n-seg.yaml", "yolov9t.yaml", "yolo26n.yaml", "yolov8n-pose.yaml",
           "yolo11n-obb.yaml"]  # fmt: skip
TASKS = ("detect", "segment", "pose", "obb", "classify", "depth", "semantic")
# Heads by exact class: a subclass may change what its convs mean (YOLO-World's text-contrastive classes)
# or take other inputs (as YOLO26's segmentation and pose heads do: raw_head knows those two).
HEADS = (*ANCHOR_HEADS, "Classify", *DENSE_HEADS)
TRANSFER_SUFFIXES = ("-seg", "-pose", "-obb")  # a yaml of these starts from its detector's checkpoint


def _ultralytics(module: str = "nn.tasks"):
    """``ultralytics.<module>``, or the error naming the extra. Before its first import Ultralytics is told it
    is offline (unless the environment says otherwise): it checks connectivity and telemetry at import."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    return require(f"ultralytics.{module}", "ultralytics")


def source_of(name: str) -> str:
    """``ultralytics:yolov8n.yaml`` -> ``yolov8n.yaml``."""
    return name.removeprefix(PREFIX)


def ultralytics_entry(name: str) -> ModelEntry:
    """The registry entry of ``ultralytics:<file>`` (nothing is built or read here). A checkpoint has its
    weights; a yaml has pretrained weights where the data folder holds ``<stem>.pt``."""
    source = Path(source_of(name))
    if source.suffix not in (".yaml", ".yml", ".pt"):
        raise InputError(f"{name!r}: expected ultralytics:<architecture .yaml> or ultralytics:<checkpoint .pt>")
    try:
        pretrained = source.suffix == ".pt" or _pretrained_weights(source.stem)[0] is not None
    except DataNotFoundError:  # $EDGEPRUNE_DATA names no folder: said when weights are asked for
        pretrained = False
    factory = functools.partial(build_yolo, str(source))
    if is_classifier_source(source):
        return ModelEntry(name, factory, CLS_FAMILY, CLS_INPUT_SIZE, 64, pretrained)
    return ModelEntry(name, factory, FAMILY, INPUT_SIZE, TEST_SIZE, pretrained)


def is_classifier_source(source: Path) -> bool:
    """Whether ``source`` names an Ultralytics classifier: Ultralytics' ``-cls`` names (``yolov8n-cls.yaml``,
    ``yolo11n-cls.pt``, ``yolov8n-cls-resnet50.yaml``), or a yaml of your own whose last layer is ``Classify``.
    Nothing is built; a checkpoint is told by its name (build_yolo refuses one whose model says otherwise)."""
    if source.stem.endswith(CLS_SUFFIX) or f"{CLS_SUFFIX}-" in source.stem:
        return True
    if source.suffix == ".pt" or not source.is_file():
        return False
    try:
        import yaml

        head = (yaml.safe_load(source.read_text()) or {}).get("head") or [[None, None, None]]
        return head[-1][2] == "Classify"
    except Exception:  # unreadable yaml: building it says why
        return False


def build_yolo(source: str, pretrained: bool = False, cfg: dict | None = None, names: dict | None = None,
               num_classes: int | None = None) -> YoloRaw | YoloClassifier:  # fmt: skip
    """The :class:`YoloRaw` of ``source`` (a yaml or a checkpoint); a classifier's :class:`YoloClassifier`.

    ``cfg`` (an Ultralytics architecture dict) builds that architecture instead of reading ``source``: an
    arch spec records it, so a pruned model reloads without its checkpoint. ``names`` are the class names.
    ``num_classes`` gives a classifier a new final layer for that many classes (a detector's classes are its
    dataset yaml's: a TypeError).
    """
    if cfg is not None:
        model = _from_yaml(copy.deepcopy(cfg), source)
    elif Path(source).suffix == ".pt":
        model = _from_checkpoint(Path(source))
    else:
        model = _from_yaml(source, source)
        if pretrained:
            path, transfer = _pretrained_weights(Path(source).stem)
            trained = _from_checkpoint(path if path is not None else find_yolo_weights(Path(source).stem))
            (_transfer_detection if transfer else load_state)(model, trained.state_dict(), str(path))
            if len(trained.names) == len(model.names):
                model.names = trained.names
    classifier = isinstance(model, _ultralytics().ClassificationModel)
    if num_classes is not None:
        if not classifier:
            raise TypeError(f"{source}: a detector's classes are its dataset yaml's, not num_classes")
        _ultralytics().ClassificationModel.reshape_outputs(model, num_classes)
        model.yaml["nc"] = model.nc = num_classes  # the arch spec's cfg rebuilds this head
        if len(model.names) != num_classes:
            model.names = {i: f"class{i}" for i in range(num_classes)}
    if names:
        model.names = {int(k): v for k, v in names.items()}
    if cfg is None and classifier != is_classifier_source(Path(source)):
        kind, named = ("a classification model", "a detector") if classifier else ("a detection model", "a classifier")
        raise InputError(f"{source} holds {kind} but is named as {named}: an Ultralytics classifier's file name "
                         f"ends in {CLS_SUFFIX} (yolov8n{CLS_SUFFIX}.pt) or has {CLS_SUFFIX}- in it")  # fmt: skip
    return (YoloClassifier if classifier else YoloRaw)(model.eval())


def _from_yaml(cfg: str | dict, source: str) -> nn.Module:
    """Build an Ultralytics model from a yaml name, path or dict; an InputError names what cannot build."""
    tasks = _ultralytics()
    with quiet("ultralytics"):
        try:
            task = tasks.guess_model_task(cfg)
            build = {"detect": tasks.DetectionModel, "segment": tasks.SegmentationModel, "pose": tasks.PoseModel,
                     "obb": tasks.OBBModel, "classify": tasks.ClassificationModel, "depth": tasks.DepthModel,
                     "semantic": tasks.SemanticSegmentationModel}.get(task)  # fmt: skip
            model = build(cfg, verbose=False) if build is not None else None
        except Exception as exc:  # a missing file, bad yaml, an unknown module: Ultralytics raises many types
            raise InputError(f"Ultralytics cannot build {source}: {type(exc).__name__}: {exc}") from exc
    return _supported(model, task, source)


def _supported(model: nn.Module | None, task: str, source: str | Path) -> nn.Module:
    """``model`` when edgeprune handles its task and head (those whose raw outputs :func:`raw_head` knows)."""
    if task not in TASKS or model is None:
        raise InputError(f"{source}: an Ultralytics {task} model; edgeprune handles {', '.join(TASKS)}")
    head = type(model.model[-1]).__name__
    if head not in HEADS:
        raise InputError(f"{source}: its {head} head is not handled (edgeprune handles {', '.join(HEADS)})")
    return model


def _from_checkpoint(path: Path) -> nn.Module:
    """The model of an Ultralytics checkpoint (its EMA when saved), in float32."""
    if not path.is_file():
        raise MissingError(f"checkpoint {path} does not exist")
    tasks = _ultralytics()
    with quiet("ultralytics"):
        try:
            ckpt, _ = tasks.torch_safe_load(str(path), safe_only=True)
        except Exception as exc:  # not a zip, not a pickle, a class outside the allow-list
            raise InputError(f"{path}: not an Ultralytics checkpoint ({type(exc).__name__}: {exc})") from exc
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    if not isinstance(model, (tasks.DetectionModel, tasks.ClassificationModel)):
        found = type(model).__name__ if model is not None else f"no model in {type(ckpt).__name__}"
        raise InputError(f"{path}: expected an Ultralytics checkpoint of a detection model (or segmentation, pose, "
                         f"OBB, classification), found {found}")  # fmt: skip
    conv = _ultralytics("nn.modules.conv").Conv
    if any(isinstance(m, conv) and not hasattr(m, "bn") for m in model.modules()):
        # the arch spec rebuilds from the yaml, which has the norms: a fused model could not reload
        raise InputError(f"{path}: a fused model (batch norms folded into the convs): use the checkpoint before fusing")
    return _supported(model, tasks.guess_model_task(model), path).float().eval()


def _local_weights(stem: str) -> Path | None:
    root = data_root()
    path = root / "pretrained" / "ultralytics" / f"{stem}.pt" if root is not None else None
    return path if path is not None and path.is_file() else None


def _pretrained_weights(stem: str) -> tuple[Path | None, bool]:
    """The local weights of ``stem`` and whether they are a detection checkpoint to transfer from (a ``-seg``,
    ``-pose`` or ``-obb`` stem without weights of its own); (None, False) when there are none."""
    own = _local_weights(stem)
    suffix = next((s for s in TRANSFER_SUFFIXES if stem.endswith(s)), None)
    if own is not None or suffix is None:
        return own, False
    detection = _local_weights(stem.removesuffix(suffix))
    return detection, detection is not None


def _transfer_detection(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a detection checkpoint into a segmentation, pose or OBB model of the same backbone: every tensor
    before the head must fit; the head's load where name and shape agree (the box branch; the class branch where
    the classes are as many). The rest keep their random weights, and a warning names them."""
    head = f"model.{len(model.model) - 1}."
    own = model.state_dict()
    body = {k: v for k, v in state.items() if not k.startswith(head)}
    check_state({k: v for k, v in own.items() if not k.startswith(head)}, body, source, type(model).__name__)
    fits = {k: v for k, v in state.items() if k.startswith(head) and k in own and v.shape == own[k].shape}
    fresh = [k for k in own if k.startswith(head) and k not in fits and not k.endswith("num_batches_tracked")]
    load_versioned(model, {**own, **body, **fits})
    parts = sorted({k.removeprefix(head).split(".")[0] for k in fresh})
    warnings.warn(f"{source}: a detection checkpoint, loaded into every tensor but {len(fresh)} of the "
                  f"{type(model.model[-1]).__name__} head's ({', '.join(parts)}): they start random, train them "
                  "before use", stacklevel=3)  # fmt: skip


def find_yolo_weights(stem: str) -> Path:
    """``<data folder>/pretrained/ultralytics/<stem>.pt``."""
    path = _local_weights(stem)
    if path is None:
        raise DataNotFoundError(
            f"no local weights for {stem}: looked for pretrained/ultralytics/{stem}.pt in the data folder "
            f"({looked_in()}). No hub is used: put the file there, or use ultralytics:<path to the .pt>."
        )
    return path


# ------------------------------------------------------------------------------------------ the model
class YoloRaw(nn.Module):
    """An Ultralytics detection model as edgeprune sees it.

    ``forward(x)`` runs the layer list with its static ``f`` indices and returns the head's raw outputs,
    one tensor of shape (batch, channels, anchors): for each head branch (one-to-many, one-to-one when the
    model has it) the box distributions (4 * reg_max), the class logits (nc) and the head's third stack
    (``cv4``: Segment's mask coefficients, Pose's keypoints, OBB's angle logits) where it has one, over every
    anchor of every scale; a Segment model appends its flattened prototypes, so the
    result is (batch, values). YOLO26's dense heads answer one map per image: Depth its log-depth, SemanticSegment
    its class logits (:func:`dense_head`). Being the model's output, these channels never prune. ``prototypes=False``
    leaves the prototypes out (a Segment model's output is then (batch, channels, anchors) too): what a
    distillation teacher answers with.
    """

    def __init__(self, model: nn.Module, prototypes: bool = True) -> None:
        super().__init__()
        self.model, self.prototypes = model, prototypes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.model.model[-1]
        return raw_head(head, head_inputs(self.model, x), self.prototypes)

    def output_weights(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Per anchor of the raw outputs ``y`` for input ``x``: weights under which every scale counts the same
        (P3 has 16 times P5's anchors), for calibrated pruning (edgeprune.prune.calibrate); None for Segment,
        whose outputs are flattened with the prototypes, and for the dense heads (a map per image)."""
        head = self.model.model[-1]
        if hasattr(head, "proto") or type(head).__name__ not in ANCHOR_HEADS:
            return None
        h, w = x.shape[-2:]
        counts = [math.ceil(h / int(s)) * math.ceil(w / int(s)) for s in head.stride.tolist()]
        if sum(counts) != y.shape[-1]:
            return None  # a head whose anchors are laid out otherwise: unweighted
        per = [torch.full((n,), (sum(counts) / (len(counts) * n)) ** 0.5) for n in counts]
        return torch.cat(per).to(y.dtype)

    def arch_kwargs(self) -> dict:
        """What rebuilds this architecture without its source file (recorded in a pruned model's arch spec)."""
        return {"cfg": self.model.yaml, "names": {str(k): v for k, v in self.model.names.items()}}

    @property
    def fx_forwards(self) -> dict:
        """Trace-time forwards for the blocks fx cannot follow (see edgeprune.graph.fxtrace)."""
        block = _ultralytics("nn.modules.block")
        return {block.C2f: csp_forward, block.RepNCSPELAN4: csp_forward, block.Attention: attention_forward,
                block.Proto26: proto26_forward}  # fmt: skip


class YoloClassifier(nn.Module):
    """An Ultralytics classification model (``yolov8n-cls.yaml``) as edgeprune sees it: a classifier whose
    forward returns the class logits in training and evaluation alike (Ultralytics' own head answers softmax
    probabilities in eval mode). It reads RGB in [0, 1], not normalized, as Ultralytics feeds it
    (``pretrained_cfg``, which edgeprune's image pipeline reads)."""

    pretrained_cfg = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
    arch_kwargs = YoloRaw.arch_kwargs
    fx_forwards = YoloRaw.fx_forwards

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.model.model[-1]
        x = head_inputs(self.model, x)
        x = torch.cat(x, 1) if len(x) > 1 else x[0]
        return head.linear(head.drop(head.pool(head.conv(x)).flatten(1)))


def head_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """What an Ultralytics model's layer list hands its head, run with the layers' static ``f`` indices."""
    layers = list(model.model)
    keep = set(model.save)
    saved: list[torch.Tensor | None] = []
    for i, m in enumerate(layers[:-1]):
        if m.f != -1:
            x = saved[m.f] if isinstance(m.f, int) else [x if j == -1 else saved[j] for j in m.f]
        x = m(x)
        saved.append(x if i in keep else None)
    f = layers[-1].f
    return [x if j == -1 else saved[j] for j in (f if isinstance(f, list) else [f])]


def csp_forward(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """C2f / C3k2 / RepNCSPELAN4 / ELAN1 as fx can trace them (their ``list(tensor.chunk(2, 1))`` cannot be):
    split by the block's own half width ``c``, so that pruning rewrites ``c`` (``forward_split`` reads it)."""
    blocks, merge = ((m.cv2, m.cv3), m.cv4) if hasattr(m, "cv4") else (m.m, m.cv2)
    parts = m.cv1(x).split((m.c, m.c), 1)
    y = [parts[0], parts[1]]
    for block in blocks:
        y.append(block(y[-1]))
    return merge(torch.cat(y, 1))


def attention_forward(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """YOLO11's attention (in C2PSA) views its heads' output back to its input's width ``x.shape[1]``: that
    width is ``num_heads * head_dim`` and cannot change without changing the heads. The trace reshapes the
    input to that written width first (the same tensor), so the graph freezes it."""
    b, _, h, w = x.shape
    return type(m).forward(m, x.reshape(b, m.num_heads * m.head_dim, h, w))


register_prefix(PREFIX, FAMILY, ultralytics_entry, [PREFIX + n for n in CHECKED])
