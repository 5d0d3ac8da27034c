"""Fine-tune and evaluate Ultralytics detectors, pruned or not, with Ultralytics' own loss, data pipeline
(augmentation, letterboxing) and validator (box mAP; a segmentation model also mask mAP, a pose model keypoint
mAP, an OBB model's boxes are rotated), run on the module edgeprune hands it.

Ultralytics' trainer would rebuild a model from its ``yaml``, which still describes the unpruned widths:
here it trains the given ``DetectionModel`` itself (``.model`` of a ``YoloRaw``), and edgeprune saves the
result as a model folder (``arch.json`` + safetensors; no pickled checkpoint is written). Ultralytics runs
offline and quiet: no font or weights download, no logger or hub integrations, no label cache written into
the data folder (it would overwrite caches that belong to the data), no plots, AMP off.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import torch
import torch.nn as nn

from edgeprune import logs
from edgeprune.atomic import atomic_write_text
from edgeprune.errors import InputError, OutputExistsError
from edgeprune.graph import build_graph
from edgeprune.models.registry import Pretrained
from edgeprune.models.ultralytics_models import DENSE_HEADS, YoloRaw, _ultralytics
from edgeprune.prune import load_model_ref
from edgeprune.regularize import SparsityHook
from edgeprune.train.detect_data import DetectionData, check_detection_data, check_task_labels
from edgeprune.train.detect_distill import DetectionDistillLoss
from edgeprune.train.distill import DistillConfig

RUN_FILE = "run.json"
OPTIMIZERS = ("SGD", "AdamW", "Adam", "NAdam", "RAdam", "RMSprop")
METRICS = {"mAP50-95": "metrics/mAP50-95(B)", "mAP50": "metrics/mAP50(B)",
           "precision": "metrics/precision(B)", "recall": "metrics/recall(B)"}  # fmt: skip
# a segmentation model is scored on its boxes (the keys above) and on its masks, a pose model on its keypoints
# (OKS); an OBB model's box metrics are of rotated boxes
TASK_METRICS = {"segment": {"mask mAP50-95": "metrics/mAP50-95(M)", "mask mAP50": "metrics/mAP50(M)"},
                "pose": {"pose mAP50-95": "metrics/mAP50-95(P)", "pose mAP50": "metrics/mAP50(P)"}}  # fmt: skip
TASK_MODULES = {"detect": ("models.yolo.detect", "Detection"), "segment": ("models.yolo.segment", "Segmentation"),
                "pose": ("models.yolo.pose", "Pose"), "obb": ("models.yolo.obb", "OBB")}  # fmt: skip
SPLIT_KEYS = {"test": "val", "val": "val", "train": "train"}  # edgeprune's --split test is the yaml's val:


def _keep_cache_in_memory(prefix: str, path: Path, cache: dict, version: str) -> None:
    cache["version"] = version  # what the real writer adds before saving; the scan result is used as it is


@contextlib.contextmanager
def ultralytics_session(quiet: bool = True) -> Iterator[None]:
    """Ultralytics as edgeprune runs it: no font download (plots are off), no label cache written into the
    data folder, no logger or hub integrations; its log and progress bars quiet unless ``quiet`` is False."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(_ultralytics("data.utils"), "check_font", lambda *a, **k: None))
        stack.enter_context(
            mock.patch.object(_ultralytics("data.dataset"), "save_dataset_cache_file", _keep_cache_in_memory)
        )
        stack.enter_context(
            mock.patch.object(_ultralytics("utils.callbacks"), "add_integration_callbacks", lambda instance: None)
        )
        if quiet:
            stack.enter_context(logs.quiet("ultralytics"))
        yield


def detection_net(model: nn.Module, label: str) -> nn.Module:
    """The Ultralytics ``DetectionModel`` (or its subclass: segmentation, pose, OBB) of ``model`` (a
    ``YoloRaw`` or the model itself)."""
    net = model.model if isinstance(model, YoloRaw) else model
    layers = getattr(net, "model", None)
    head = type(layers[-1]).__name__ if isinstance(layers, nn.Sequential) else None
    if head in DENSE_HEADS:
        raise InputError(f"{label} has a {head} head: edgeprune prunes, exports and times such a model, but trains "
                         "and scores detection, segmentation, pose and OBB models only")  # fmt: skip
    if not isinstance(net, _ultralytics().DetectionModel):
        raise InputError(f"{label} is not an Ultralytics detection, segmentation, pose or OBB model")
    return net


def task_of(net: nn.Module) -> str:
    """``segment``, ``pose`` or ``obb`` for those Ultralytics models, else ``detect``."""
    tasks = _ultralytics()
    kinds = {"segment": tasks.SegmentationModel, "pose": tasks.PoseModel, "obb": tasks.OBBModel}
    return next((task for task, kind in kinds.items() if isinstance(net, kind)), "detect")


def task_metrics(task: str) -> dict[str, str]:
    """edgeprune's metric names and Ultralytics' keys for them, for ``task``."""
    return {**METRICS, **TASK_METRICS.get(task, {})}


def task_summary(task: str, scores: dict) -> str:
    """``, mask mAP50-95 0.1234, mask mAP50 0.2345`` (pose: keypoint mAP): the task's own metrics, for a log."""
    return "".join(f", {k} {scores[k]:.4f}" for k in TASK_METRICS.get(task, {}) if k in scores)


def _task_class(task: str, kind: str) -> type:
    """Ultralytics' ``DetectionTrainer`` / ``SegmentationValidator``... for ``task`` and ``kind``."""
    module, prefix = TASK_MODULES[task]
    return getattr(_ultralytics(module), prefix + kind)


def _check_classes(net: nn.Module, data: DetectionData, label: str) -> None:
    head = net.model[-1]
    nc = int(head.nc)
    if nc != data.nc:
        raise InputError(f"{label} detects {nc} classes but {data.source} names {data.nc}: use a model trained "
                         "on these classes")  # fmt: skip
    kpt_shape = getattr(head, "kpt_shape", None)
    if kpt_shape is not None and data.kpt_shape and list(kpt_shape) != list(data.kpt_shape):  # none: check_task_labels
        raise InputError(f"{label} predicts keypoints of shape {list(kpt_shape)} but {data.source} has "
                         f"kpt_shape: {data.kpt_shape}: a pose model's data names the same keypoints")  # fmt: skip


def _load(model: str | os.PathLike | nn.Module, pretrained: Pretrained) -> tuple[nn.Module, str]:
    if isinstance(model, nn.Module):
        return model, type(model).__name__
    return load_model_ref(str(model), pretrained)[0], str(model)


def detection_metrics(model: str | os.PathLike | nn.Module, data_yaml: str | os.PathLike, imgsz: int = 640,
                      batch: int = 16, split: str = "val", pretrained: Pretrained = False, device: str = "cpu",
                      quiet: bool = True, rect: bool = True) -> dict:  # fmt: skip
    """mAP50-95, mAP50, precision and recall of a detector on a split of a dataset yaml, computed by
    Ultralytics' ``DetectionValidator`` (its defaults: rectangular batches, conf 0.001, NMS IoU 0.7) on a copy
    of the model (validation fuses batch norms); ``per_class`` counts each class's images and instances. A
    segmentation model is scored by the ``SegmentationValidator``: box metrics as above, plus ``mask mAP50-95``
    and ``mask mAP50`` against the polygon labels; a pose model by the ``PoseValidator``, plus ``pose mAP50-95``
    and ``pose mAP50`` (OKS) against the keypoint labels; an OBB model by the ``OBBValidator`` (rotated boxes,
    from polygon labels).

    ``model``: a model reference (``ultralytics:<yaml or .pt>``, a pruned folder or training run), a
    ``YoloRaw`` or a ``DetectionModel``. ``split``: ``val`` (also ``test``: the yaml's val:) or ``train``.
    ``rect=False`` letterboxes every image to ``imgsz`` square: what a model exported at that size runs on.
    """
    if split not in SPLIT_KEYS:
        raise InputError(f"split {split!r}: expected one of {', '.join(SPLIT_KEYS)}")
    key = SPLIT_KEYS[split]
    data = check_detection_data(data_yaml, (key,))
    module, label = _load(model, pretrained)
    net = detection_net(module, label)
    _check_classes(net, data, label)
    task = task_of(net)
    check_task_labels(data, key, task)
    with tempfile.TemporaryDirectory(prefix="edgeprune-val-") as tmp, ultralytics_session(quiet):
        args = dict(data=str(data.write(Path(tmp) / "data.yaml")), imgsz=imgsz, batch=batch, split=key, rect=rect,
                    plots=False, save_json=False, verbose=False, device=device, workers=0, project=tmp, name="val",
                    exist_ok=True, mode="val", task=task)  # fmt: skip
        validator = _task_class(task, "Validator")(args=args)
        stats = validator(model=copy.deepcopy(net).float().eval())
    m, names = validator.metrics, validator.names
    per_class = {}
    for i, c in enumerate(m.ap_class_index):
        scores = m.class_result(i)  # box precision, recall, AP50, AP (segment, pose: then the same for theirs)
        per_class[names[int(c)]] = {"images": int(m.nt_per_image[c]), "instances": int(m.nt_per_class[c]),
                                    "mAP50": float(scores[2]), "mAP50-95": float(scores[3])}  # fmt: skip
        own = list(TASK_METRICS.get(task, {}))  # [mAP50-95, mAP50] of the task's own
        if own:
            per_class[names[int(c)]].update({own[1]: float(scores[6]), own[0]: float(scores[7])})
    result = {k: float(stats[v]) for k, v in task_metrics(task).items()}
    return {**result, "task": task, "images": int(validator.seen), "instances": int(m.nt_per_class.sum()),
            "imgsz": imgsz, "split": key, "per_class": per_class}  # fmt: skip


@functools.cache
def _trainer_class(task: str) -> type:
    """Ultralytics' trainer for ``task``, made to train the module it is given (see the module docstring)."""
    base = _task_class(task, "Trainer")

    class ModuleTrainer(base):
        def __init__(self, net: nn.Module, hook: SparsityHook | None, overrides: dict, frozen_bn: bool) -> None:
            super().__init__(overrides=overrides)
            self.model, self.hook = net, hook  # setup_model keeps a module it is given
            self.frozen_bn = frozen_bn

        def get_model(self, cfg=None, weights=None, verbose=True):
            raise RuntimeError("edgeprune trains the module it gives the trainer; nothing is built from a yaml")

        def optimizer_step(self) -> None:
            # the regularizer's gradient goes in after the last backward of the step and before the step
            if self.hook is not None:
                self.hook.after_backward()
            super().optimizer_step()
            if self.hook is not None:
                self.hook.after_step()

        def _model_train(self) -> None:
            super()._model_train()
            if self.frozen_bn:  # batch norms normalize with their running statistics, which stay as they are
                for m in self.model.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()

        def save_model(self) -> bool:
            return False  # edgeprune writes the model folder itself: no pickled checkpoints

        def final_eval(self) -> None:
            pass  # the last epoch was validated already; there is no best.pt to reload

    return ModuleTrainer


def finetune_detector(model_ref: str, data_yaml: str | os.PathLike, out_dir: str | os.PathLike, epochs: int = 5,
                      imgsz: int = 640, batch: int = 16, lr: float = 1e-4, *, optimizer: str = "AdamW",
                      weight_decay: float = 5e-4, warmup_epochs: float = 0.0, seed: int = 0, train_bn: bool = False,
                      pretrained: Pretrained = False, teacher: str | DistillConfig | None = None, reg: str = "none",
                      reg_kwargs: dict | None = None, device: str | None = None, progress: bool = True,
                      extra: dict | None = None, freeze_unknown: bool = False) -> dict:  # fmt: skip
    """Fine-tune a (pruned) Ultralytics detector on a dataset yaml through Ultralytics' DetectionTrainer (a
    segmentation model: its SegmentationTrainer, on polygon labels, with the mask metrics in run.json; a pose
    model: its PoseTrainer, on keypoint labels; an OBB model: its OBBTrainer, on polygon labels).

    Writes ``out_dir/model`` (arch.json + safetensors: the EMA weights Ultralytics validates),
    ``importance.json``, ``run.json`` (settings and the metrics of every epoch, measured on the val split),
    ``data.yaml`` (the resolved dataset) and Ultralytics' own ``ultralytics/`` log (args.yaml, results.csv).

    One optimizer step per batch (Ultralytics' nominal batch is set to ``batch``), deterministic from
    ``seed``. Batch norms keep their running statistics (their scale and shift still learn) unless
    ``train_bn``: a few hundred images estimate them poorly, and a model whose norms were folded into its
    convs (the rebuilt checkpoints of the data folder) loses most of its accuracy in one epoch otherwise.
    ``teacher``: distillation from that model (see :mod:`edgeprune.train.detect_distill`). ``reg``:
    a regularizer (``edgeprune.regularize``) whose gradient is added before every optimizer step (Ultralytics
    sums its loss over the batch: scale ``lam`` accordingly). ``device``: Ultralytics' device string; by
    default the first GPU when torch sees one (images then load in up to 8 worker processes), else the CPU.
    ``extra``: further Ultralytics train arguments (``mosaic=0.5``, ``close_mosaic=0``, ``workers=4``...),
    which take precedence over the ones set here. ``freeze_unknown``: the channel graph's
    (:func:`edgeprune.graph.build_graph`).
    """
    out = Path(out_dir)
    if (out / RUN_FILE).exists() or (out / "model").exists():
        raise OutputExistsError(f"{out} already holds a run: choose another output folder")
    if optimizer not in OPTIMIZERS:
        raise InputError(f"optimizer {optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
    distill = DistillConfig(teacher) if isinstance(teacher, str) else teacher
    if distill is not None and distill.feature_weight:
        raise InputError("feature distillation matches a classifier's penultimate features: not for detectors")
    data = check_detection_data(data_yaml, ("train", "val"), labels=distill is None or distill.labels)
    model, name, kwargs, changes = load_model_ref(model_ref, pretrained)
    net = detection_net(model, model_ref)
    _check_classes(net, data, model_ref)
    task = task_of(net)
    for split in ("train", "val"):  # the trainer validates every epoch: both splits are read as the task reads them
        check_task_labels(data, split, task)
    stride = int(net.stride.max())
    if imgsz % stride:
        raise InputError(f"input size {imgsz}: a YOLO input side is a multiple of its largest stride ({stride})")
    raw = YoloRaw(net)
    graph = build_graph(raw, torch.randn(1, 3, imgsz, imgsz), model_name=name, model_kwargs=kwargs,
                        freeze_unknown=freeze_unknown)
    hook = SparsityHook.from_graph(raw, graph, reg, **(reg_kwargs or {}))
    criterion = _distill_criterion(distill, raw) if distill else None
    out.mkdir(parents=True, exist_ok=True)
    device = (extra or {}).get("device", device)
    if device is None:
        device = "0" if torch.cuda.is_available() else "cpu"
    workers = 0 if str(device) == "cpu" else min(8, os.cpu_count() or 1)  # loading in the main process on CPU
    overrides = dict(model=str(model_ref), data=str(data.write(out / "data.yaml")), epochs=epochs, imgsz=imgsz,
                     batch=batch, nbs=batch, lr0=lr, optimizer=optimizer, weight_decay=weight_decay,
                     warmup_epochs=warmup_epochs, seed=seed, deterministic=True, amp=False, plots=False,
                     device=device, workers=workers, project=str(out.resolve()), name="ultralytics", exist_ok=True,
                     val=True, verbose=False, task=task)  # fmt: skip
    overrides.update(extra or {})
    epochs_log: list[dict] = []
    with ultralytics_session():
        try:
            trainer = _trainer_class(task)(net, hook if reg != "none" else None, overrides, not train_bn)
        except (SyntaxError, TypeError, ValueError) as exc:  # get_cfg rejects unknown or ill-typed arguments
            raise InputError(f"Ultralytics refused a training argument: {exc}") from exc
        if criterion is not None:
            trainer.add_callback("on_pretrain_routine_end", lambda tr: setattr(tr.model, "criterion", criterion(tr)))
        trainer.add_callback("on_fit_epoch_end", lambda tr: epochs_log.append(_epoch_record(tr, task, progress)))
        trainer.train()
    with contextlib.suppress(OSError):  # Ultralytics made its checkpoint folder; nothing was saved in it
        trainer.wdir.rmdir()
    # keep the EMA weights (what was validated) in the trained module, whose parameters the hook holds
    net.load_state_dict(trainer.ema.ema.state_dict())
    net.cpu()  # trained on a GPU: saved (and its importance computed) on the CPU
    net.criterion = None
    net.eval()
    kwargs = {**kwargs, **raw.arch_kwargs()}  # the class names now are the data's
    hook.save(out, name, kwargs, changes, (3, imgsz, imgsz))
    settings = {"epochs": epochs, "imgsz": imgsz, "batch": batch, "lr": lr, "optimizer": optimizer,
                "weight_decay": weight_decay, "warmup_epochs": warmup_epochs, "seed": seed, "train_bn": train_bn,
                "device": device,
                "extra": extra or {}}  # fmt: skip
    scores = {k: epochs_log[-1][k] for k in task_metrics(task)} if epochs_log else {}
    result = {"status": "done", **scores}
    summary = {"model": name, "from": str(model_ref), "data": str(data.source), "task": task, "regularizer": reg,
               "reg_kwargs": reg_kwargs or {}, "config": settings, "distill": distill.__dict__ if distill else None,
               "classes": data.nc, "images": data.images, "epochs": epochs_log, "result": result}  # fmt: skip
    atomic_write_text(out / RUN_FILE, json.dumps(summary, indent=1))
    return result


def _distill_criterion(cfg: DistillConfig, student: YoloRaw):
    """A factory of the distillation criterion for a trainer (Ultralytics' own criterion inside it), after
    checking that the teacher answers on the student's anchors."""
    loaded = load_model_ref(cfg.teacher, pretrained=not Path(cfg.teacher).is_dir())[0]
    # a segmentation teacher answers without its prototypes: (batch, channels, anchors) as a detector does
    teacher = YoloRaw(detection_net(loaded, cfg.teacher), prototypes=False)
    head, their = student.model.model[-1], teacher.model.model[-1]
    x = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        t, s = teacher.eval()(x).shape, YoloRaw(student.model, prototypes=False).eval()(x).shape
    if (their.nc, their.reg_max, t[2]) != (head.nc, head.reg_max, s[2]):
        raise InputError(f"teacher {cfg.teacher} has {their.nc} classes, {their.reg_max} box bins and {t[2]} "
                         f"anchors at 64 px where the student has {head.nc}, {head.reg_max} and {s[2]}")  # fmt: skip

    def build(trainer) -> DetectionDistillLoss:
        model = trainer.model
        return DetectionDistillLoss(model.init_criterion(), teacher.to(trainer.device), cfg, head.reg_max, head.nc)

    return build


def _epoch_record(trainer, task: str, progress: bool) -> dict:
    """One epoch of run.json: the val metrics, the mean train loss terms and the val loss terms, the time."""
    metrics = trainer.metrics or {}
    record = {"epoch": trainer.epoch + 1, **{k: float(metrics.get(v, 0.0)) for k, v in task_metrics(task).items()},
              "train_loss": {k: float(v) for k, v in (trainer.tloss or {}).items()},
              "val_loss": {k.removeprefix("val/"): float(v) for k, v in metrics.items() if k.startswith("val/")},
              "seconds": round(float(trainer.epoch_time or 0.0), 2)}  # fmt: skip
    if progress:
        loss = sum(record["train_loss"].values())
        print(f"epoch {record['epoch']}/{trainer.epochs}: train loss {loss:.3f}, mAP50-95 {record['mAP50-95']:.4f}, "
              f"mAP50 {record['mAP50']:.4f}{task_summary(task, record)} ({record['seconds']:.0f} s)",
              file=sys.stderr)  # fmt: skip
    return record
