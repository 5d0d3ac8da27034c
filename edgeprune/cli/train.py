"""Training commands: train (regularized training, or fine-tuning with --reg none) and eval."""

from __future__ import annotations

import json

import click

from edgeprune.cli.common import (
    emit,
    forbid,
    freeze_unknown_option,
    hidden,
    json_option,
    model_argument,
    options,
    resolve_model_arg,
    weights_options,
)
from edgeprune.cli.detect import detection_route, eval_detector, train_detector
from edgeprune.regularize import list_regularizers
from edgeprune.train.data import DATASETS, check_data, is_folder
from edgeprune.train.detect_data import is_detection_data

REGULARIZERS = list_regularizers()  # "none" (no penalty: fine-tuning) is one of them
# (epochs, lr) when not given: a sparsity run, or a fine-tune
DEFAULTS = {"train": (10, 0.05), "finetune": (5, 0.01)}

data_options = options(
    click.option("--data", default="cifar10", show_default=True, metavar="NAME|FOLDER|YAML",
                 help=f"Data set ({', '.join(DATASETS)}), a folder with train/ and val/ class folders (or only "
                 "class folders: split 90/10) of images or of .npy arrays (a sequence model's samples, fed as they "
                 "are), or a dataset .yaml (train, eval of a YOLO)."),
    click.option("--data-dir", default=None, metavar="DIR",
                 help="Where named data sets are (default: $EDGEPRUNE_DATA, ../shared/data, download)."),
)  # fmt: skip
# how an image folder is read: options that a named data set (uint8 arrays at their own size) refuses
folder_options = options(
    click.option("--input-size", type=click.IntRange(min=8), default=None, metavar="PX",
                 help="Square input side for an image folder (default: the model's)."),
    hidden("--workers", type=click.IntRange(min=0), default=None, help="Image-folder decoding processes."),
)  # fmt: skip


def check_data_options(ctx: click.Context, data: str) -> None:
    """``data`` names a data set or an existing folder; options the other kind would ignore are usage errors."""
    if is_detection_data(data):  # train and eval route detectors before this
        raise click.UsageError(f"--data {data}: a detection dataset yaml works with train and eval of an "
                               "Ultralytics detector")  # fmt: skip
    check_data(data)
    if is_folder(data):
        forbid(ctx, ("data_dir",), "with an image folder as --data (it locates the named data sets)")
    else:
        forbid(ctx, ("input_size", "workers"), f"with --data {data} (they set how an image folder is read)")

train_options = options(
    model_argument,
    data_options,
    folder_options,
    click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Run folder."),
    click.option("--reg", type=click.Choice(REGULARIZERS), default="oicsr", show_default=True,
                 help="Structured-sparsity regularizer; none fine-tunes (after pruning, or on new data)."),
    click.option("--lam", type=click.FloatRange(min=0), default=1e-4, show_default=True,
                 help="Regularization strength."),
    click.option("--epochs", type=click.IntRange(min=1), default=None,
                 help="Epochs (default 10; 5 with --reg none)."),
    click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Learning rate (default 0.05; 0.01 with --reg none)."),
    click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True),
    weights_options,
    click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint."),
    freeze_unknown_option,
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Cap on steps per epoch (quick runs)."),
    click.option("--distill", "teacher", metavar="TEACHER", default=None,
                 help="Also learn from TEACHER's outputs (KL at a temperature): the unpruned model, as a registry "
                 "name (pretrained weights), training run or folder."),
    click.option("--no-labels", is_flag=True, help="With --distill: label-free, the teacher is the only target."),
    hidden("--temperature", type=click.FloatRange(min=0, min_open=True), default=4.0, help="Distillation T."),
    hidden("--distill-weight", type=click.FloatRange(0, 1), default=0.9, help="KL share of the loss (with labels)."),
    hidden("--feature-weight", type=click.FloatRange(min=0), default=0.0,
           help="Also match penultimate features (MSE) with this weight."),
    hidden("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd"),
    hidden("--schedule", type=click.Choice(["cosine", "step"]), default="cosine"),
    hidden("--warmup", type=click.FloatRange(min=0), default=0.0, help="Warm-up epochs."),
    hidden("--label-smoothing", type=click.FloatRange(0, 1), default=0.0),
    hidden("--weight-decay", type=click.FloatRange(min=0), default=5e-4),
    hidden("--rho", type=click.FloatRange(min=0, min_open=True), default=1e-2, help="SSR: AULM penalty."),
    hidden("--every", type=click.IntRange(min=1), default=10, help="SSR: steps between prox updates."),
    hidden("--ssr-groups", type=click.Choice(["out", "out-in"]), default="out"),
    hidden("--size-weighted", is_flag=True, help="OICSR/group lasso: weight groups by sqrt(size)."),
    hidden("--penalize-streams", is_flag=True, help="Also regularize residual streams."),
)  # fmt: skip


def regularizer_kwargs(ctx: click.Context, reg: str, o: dict) -> dict:
    """The regularizer's settings; an option that the chosen regularizer would ignore is a usage error."""
    ssr = ("rho", "every", "ssr_groups")
    if reg == "none":
        forbid(ctx, ("lam", "penalize_streams", "size_weighted", *ssr), "with --reg none (no regularizer)")
        return {}
    if not reg.startswith("ssr"):
        forbid(ctx, ssr, f"with --reg {reg} (they set SSR's AULM solver)")
    if reg not in ("oicsr", "group_lasso"):
        forbid(ctx, ("size_weighted",), f"with --reg {reg} (only OICSR and group lasso weight groups)")
    kwargs: dict = {"lam": o["lam"], "streams": o["penalize_streams"]}
    if reg.startswith("ssr"):
        kwargs.update(rho=o["rho"], every=o["every"], groups=o["ssr_groups"])
    elif reg in ("oicsr", "group_lasso"):
        kwargs["size_weighted"] = o["size_weighted"]
    return kwargs


def distill_config(ctx: click.Context, o: dict):
    """The distillation settings, or None; its knobs without --distill are usage errors."""
    from edgeprune.train.distill import DistillConfig

    if not o["teacher"]:
        forbid(ctx, ("no_labels", "temperature", "distill_weight", "feature_weight"), "without --distill TEACHER")
        return None
    if o["no_labels"]:
        forbid(ctx, ("distill_weight", "label_smoothing"), "with --no-labels (there is no label term to weigh)")
    return DistillConfig(o["teacher"], o["temperature"], o["distill_weight"], not o["no_labels"], o["feature_weight"])


def run_training(ctx: click.Context, model: str, reg: str, o: dict) -> None:
    from edgeprune.train.run import train_run
    from edgeprune.train.trainer import TrainConfig

    if detection_route(model, o["data"]):
        return train_detector(ctx, model, reg, o, regularizer_kwargs(ctx, reg, o), distill_config(ctx, o))
    check_data_options(ctx, o["data"])
    kwargs = regularizer_kwargs(ctx, reg, o)
    distill = distill_config(ctx, o)
    epochs, lr = DEFAULTS["finetune" if reg == "none" else "train"]
    cfg = TrainConfig(
        epochs=o["epochs"] or epochs, batch_size=o["batch_size"], optimizer=o["optimizer"], lr=o["lr"] or lr,
        schedule=o["schedule"], warmup_epochs=o["warmup"], label_smoothing=o["label_smoothing"],
        weight_decay=o["weight_decay"], seed=o["seed"], max_steps_per_epoch=o["max_steps"],
    )  # fmt: skip
    result = train_run(model, o["out_dir"], o["data"], reg, kwargs, cfg, o["pretrained"], o["resume"],
                       o["data_dir"], distill=distill, input_size=o["input_size"], workers=o["workers"],
                       freeze_unknown=o["freeze_unknown"])  # fmt: skip
    if result["status"] == "interrupted":
        click.echo(f"interrupted at epoch {result['epoch'] + 1}; checkpoint saved: rerun with --resume to continue")
        ctx.exit(130)
    shown = {k: v for k, v in result.items() if k != "status"}
    click.echo(f"done: {json.dumps(shown)}; model in {o['out_dir']}/model")


@click.command("train", short_help="Sparsity training, or fine-tuning (--reg none).")
@train_options
@click.pass_context
def train_cmd(ctx, model, model_option, reg, **o) -> None:
    """Train MODEL with a structured-sparsity regularizer, or fine-tune it (--reg none).

    MODEL is a registry name, pkg.module:factory, a training run or a pruned-model folder. The run folder
    keeps a checkpoint: --resume continues it. Works under torchrun (one process per device, DDP).

    \b
    edgeprune train cifar_resnet56 --pretrained --data cifar10 --reg oicsr --out runs/r56-oicsr
    edgeprune train runs/r56-pruned --reg none --epochs 3 --out runs/r56-finetuned
    """
    run_training(ctx, resolve_model_arg(model, model_option), reg, o)


@click.command("finetune", hidden=True)
@train_options
@click.pass_context
def finetune_cmd(ctx, model, model_option, reg, **o) -> None:
    """Older spelling of `train --reg none`."""
    if ctx.get_parameter_source("reg").name != "DEFAULT" and reg != "none":
        raise click.UsageError("finetune trains without a regularizer: use `edgeprune train --reg ...`")
    run_training(ctx, resolve_model_arg(model, model_option), "none", o)


@click.command("eval", short_help="Top-1 accuracy (a detector: mAP) of a model on a data set.")
@model_argument
@data_options
@folder_options
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True,
              help="test: an image folder's val/ images.")
@weights_options
@json_option
@click.pass_context
def eval_cmd(ctx, model, model_option, data, data_dir, input_size, workers, split, pretrained, as_json) -> None:
    """Top-1 accuracy of MODEL (registry name, training run or pruned-model folder); an Ultralytics detector's
    mAP50-95 and mAP50 on a dataset yaml (a segmentation model's also on its masks, against polygon labels)."""
    from edgeprune.train.run import eval_run

    ref = resolve_model_arg(model, model_option)
    if detection_route(ref, data):
        return eval_detector(ctx, ref, data, input_size, split, pretrained, as_json)
    check_data_options(ctx, data)
    acc = eval_run(ref, data, split, data_dir, pretrained, input_size, workers)
    emit(as_json, {"model": ref, "data": data, "split": split, "top1": acc},
         f"{ref}: top-1 {100 * acc:.2f} % on {data} {split}")  # fmt: skip
