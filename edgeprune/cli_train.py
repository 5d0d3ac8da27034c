"""Training commands: train, finetune, eval (registered on the ``edgeprune`` group in cli.py)."""

from __future__ import annotations

import json
import sys

import click

from edgeprune.cli_util import _DOMAIN_ERRORS, _fail
from edgeprune.train.data import DATASETS


def _train_options(fn):
    opts = [
        click.option("--model", "model_ref", required=True, help="Registry name, training run, or pruned folder."),
        click.option("--pretrained", is_flag=True, help="Start from pretrained weights (registry names)."),
        click.option("--data", type=click.Choice(DATASETS), default="cifar10", show_default=True),
        click.option("--data-dir", default=None, help="Data folder (default: $EDGEPRUNE_DATA or ../shared/data)."),
        click.option("--epochs", type=click.IntRange(min=1), default=None),
        click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None),
        click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True),
        click.option("--schedule", type=click.Choice(["cosine", "step"]), default="cosine", show_default=True),
        click.option("--warmup", type=click.FloatRange(min=0), default=0.0, help="Warm-up epochs."),
        click.option("--label-smoothing", type=click.FloatRange(0, 1), default=0.0),
        click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Cap on steps per epoch."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _run_training(reg, reg_kwargs, defaults, **o) -> None:
    from edgeprune.train.run import RunError, train_run
    from edgeprune.train.trainer import TrainConfig, TrainingDiverged

    cfg = TrainConfig(
        epochs=o["epochs"] or defaults["epochs"], batch_size=o["batch_size"], optimizer=o["optimizer"],
        lr=o["lr"] or defaults["lr"], schedule=o["schedule"], warmup_epochs=o["warmup"],
        label_smoothing=o["label_smoothing"], weight_decay=o["weight_decay"], seed=o["seed"],
        max_steps_per_epoch=o["max_steps"],
    )  # fmt: skip
    try:
        result = train_run(o["model_ref"], o["out_dir"], o["data"], reg, reg_kwargs, cfg, o["pretrained"],
                           o["resume"], o["data_dir"])  # fmt: skip
    except (*_DOMAIN_ERRORS, RunError, TrainingDiverged, KeyError) as exc:
        _fail(exc)
    if result["status"] == "interrupted":
        click.echo(f"interrupted at epoch {result['epoch'] + 1}; checkpoint saved: rerun with --resume to continue")
        sys.exit(130)
    click.echo(f"done: {json.dumps({k: v for k, v in result.items() if k != 'status'})}; model in {o['out_dir']}/model")


@click.command("train")
@_train_options
@click.option("--reg", type=click.Choice(["none", "oicsr", "group_lasso", "slimming", "ssr_l21", "ssr_l20"]),
              default="oicsr", show_default=True, help="Structured-sparsity regularizer.")
@click.option("--lam", type=click.FloatRange(min=0), default=1e-4, show_default=True, help="Regularization strength.")
@click.option("--rho", type=click.FloatRange(min=0, min_open=True), default=1e-2, show_default=True,
              help="SSR: AULM penalty.")
@click.option("--every", type=click.IntRange(min=1), default=10, show_default=True,
              help="SSR: steps between prox updates.")
@click.option("--ssr-groups", type=click.Choice(["out", "out-in"]), default="out", show_default=True)
@click.option("--size-weighted", is_flag=True, help="OICSR/group lasso: weight groups by sqrt(size).")
@click.option("--penalize-streams", is_flag=True,
              help="Also regularize residual streams; for plans that may cut them (prune --max-removed-shared).")
def train_cmd(reg, lam, rho, every, ssr_groups, size_weighted, penalize_streams, **o) -> None:
    """Regularized training (default 10 epochs, lr 0.05). Works under torchrun for multi-process DDP."""
    kwargs: dict = {} if reg == "none" else {"lam": lam, "streams": penalize_streams}
    if reg.startswith("ssr"):
        kwargs.update(rho=rho, every=every, groups=ssr_groups)
    elif reg in ("oicsr", "group_lasso"):
        kwargs["size_weighted"] = size_weighted
    _run_training(reg, kwargs, {"epochs": 10, "lr": 0.05}, **o)


@click.command("finetune")
@_train_options
def finetune_cmd(**o) -> None:
    """Fine-tune without a regularizer (default 5 epochs, lr 0.01): after pruning, or on new data."""
    _run_training("none", {}, {"epochs": 5, "lr": 0.01}, **o)


@click.command("eval")
@click.argument("model_ref")
@click.option("--pretrained", is_flag=True, help="Pretrained weights (registry names).")
@click.option("--data", type=click.Choice(DATASETS), default="cifar10", show_default=True)
@click.option("--data-dir", default=None)
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
def eval_cmd(model_ref, pretrained, data, data_dir, split) -> None:
    """Top-1 accuracy of MODEL_REF (registry name, training run or pruned folder)."""
    from edgeprune.train.run import eval_run

    try:
        acc = eval_run(model_ref, data, split, data_dir, pretrained)
    except _DOMAIN_ERRORS as exc:
        _fail(exc)
    click.echo(f"{model_ref}: top-1 {100 * acc:.2f} % on {data} {split}")
