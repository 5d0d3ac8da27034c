"""train and eval of Ultralytics detectors: a detector MODEL with a dataset yaml as --data routes here."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeprune.cli.common import emit, forbid, given
from edgeprune.errors import EdgepruneError, InputError
from edgeprune.models import get_entry
from edgeprune.models.ultralytics_models import FAMILY
from edgeprune.prune.serialize import ARCH_FILE, saved_side
from edgeprune.train.detect_data import check_data_kind

DEFAULT_SIDE, DEFAULT_BATCH = 640, 16
OPTIMIZERS = {"sgd": "SGD", "adamw": "AdamW"}


def model_family(ref: str) -> str | None:
    """The registry family of a model reference (a saved folder: of the model it was saved from), or None."""
    path = Path(ref)
    if path.is_dir():
        arch = next((p for p in (path / ARCH_FILE, path / "model" / ARCH_FILE) if p.is_file()), None)
        try:
            ref = json.loads(arch.read_text())["model"] if arch else ""
        except (json.JSONDecodeError, KeyError, TypeError):
            return None  # loading the model reports a broken spec with its own message
    try:
        return get_entry(ref).family if ref else None
    except EdgepruneError:
        return None


def detection_route(model: str, data: str) -> bool:
    """Whether MODEL is an Ultralytics detector and --data a dataset yaml; a usage error when only one is."""
    try:
        return check_data_kind(model, model_family(model) == FAMILY, data)
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc


def _side(model: str, input_size: int | None) -> int:
    return input_size or saved_side(model) or DEFAULT_SIDE


def train_detector(ctx: click.Context, model: str, reg: str, o: dict, reg_kwargs: dict, distill) -> None:
    """`edgeprune train` of a detector: Ultralytics' trainer on the module (edgeprune.train.detect)."""
    from edgeprune.cli.train import DEFAULTS
    from edgeprune.train.detect import finetune_detector

    forbid(ctx, ("data_dir", "workers", "resume", "max_steps", "schedule", "label_smoothing"),
           "with a detector (Ultralytics' trainer reads the data and schedules the epochs)")  # fmt: skip
    epochs = o["epochs"] or DEFAULTS["finetune" if reg == "none" else "train"][0]
    settings = {"optimizer": OPTIMIZERS[o["optimizer"]] if given(ctx, "optimizer") else "AdamW",
                "weight_decay": o["weight_decay"], "warmup_epochs": o["warmup"], "seed": o["seed"],
                "pretrained": o["pretrained"], "teacher": distill, "reg": reg, "reg_kwargs": reg_kwargs,
                "freeze_unknown": o["freeze_unknown"]}  # fmt: skip
    if o["lr"]:
        settings["lr"] = o["lr"]
    batch = o["batch_size"] if given(ctx, "batch_size") else DEFAULT_BATCH
    result = finetune_detector(model, o["data"], o["out_dir"], epochs, _side(model, o["input_size"]), batch,
                               **settings)  # fmt: skip
    click.echo(f"done: {json.dumps(result)}; model in {o['out_dir']}/model")


def eval_detector(ctx: click.Context, model: str, data: str, input_size: int | None, split: str, pretrained,
                  as_json: bool) -> None:  # fmt: skip
    """`edgeprune eval` of a detector: mAP by Ultralytics' validator (segmentation: also mask mAP; pose:
    keypoint mAP)."""
    from edgeprune.train.detect import detection_metrics, task_summary

    forbid(ctx, ("data_dir", "workers"), "with a detector (Ultralytics' validator reads the dataset yaml)")
    r = detection_metrics(model, data, _side(model, input_size), split=split, pretrained=pretrained)
    emit(as_json, {"model": model, "data": data, **r},
         f"{model}: mAP50-95 {r['mAP50-95']:.4f}, mAP50 {r['mAP50']:.4f}{task_summary(r['task'], r)} on {data} "
         f"{r['split']} "
         f"({r['images']} images, {r['imgsz']} px)")  # fmt: skip
