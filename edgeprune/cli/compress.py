"""`edgeprune compress`: the whole pipeline in one resumable run, from options or a TOML job file."""

from __future__ import annotations

from pathlib import Path

import click

from edgeprune.cli.common import (
    emit,
    forbid,
    hidden,
    json_option,
    model_argument,
    resolve_model_arg,
    weights_options,
)
from edgeprune.cli.prune import budget_options, calibration_from, calibration_options, prune_settings
from edgeprune.cli.train import REGULARIZERS, check_data_options, data_options, folder_options


def read_job_file(ctx: click.Context, _param, path: str | None) -> str | None:
    """Load a TOML job file as the command's defaults: options given on the command line still win.
    Keys are option names (``finetune-epochs`` or ``finetune_epochs``); an unknown key is an error."""
    if not path:
        return path
    from edgeprune.errors import InputError
    from edgeprune.targets import tomllib

    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}") from exc
    known = {p.name: p for p in ctx.command.params if p.name not in ("config", "model_option")}
    names = {"out": "out_dir", "target": "target_name", "profile": "profile_path"}
    values = {}
    for key, value in data.items():
        name = names.get(key.replace("-", "_"), key.replace("-", "_"))
        if name not in known:
            allowed = sorted(max(p.opts, key=len).lstrip("-") if p.opts else p.name for p in known.values())
            raise InputError(f"{path}: unknown setting {key!r}; allowed: {', '.join(allowed)}")
        values[name] = value
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return path


@click.command("compress", short_help="The whole pipeline, resumable, from options or TOML.")
@model_argument
@budget_options
@data_options
@folder_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=False, metavar="DIR",
              help="Run folder (running the command again resumes it).")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), callback=read_job_file, is_eager=True,
              expose_value=False, metavar="JOB.toml", help="Settings from a TOML file; the command line wins.")
@weights_options
@click.option("--reg", type=click.Choice(REGULARIZERS), default="oicsr", show_default=True, metavar="NAME",
              help=f"Sparsity regularizer: {', '.join(REGULARIZERS)}.")
@click.option("--reg-epochs", type=click.IntRange(min=0), metavar="N", default=2, show_default=True,
              help="Sparsity-training epochs (0 skips the stage).")
@click.option("--finetune-epochs", type=click.IntRange(min=0), metavar="N", default=2, show_default=True,
              help="Fine-tuning epochs after pruning.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, metavar="N",
              help="Cap on steps per epoch (quick runs).")
@click.option("--distill", type=click.Choice(["off", "labels", "label-free"]), default="off", show_default=True,
              metavar="MODE", help="Fine-tune from the unpruned model's outputs: off, labels, label-free.")
@calibration_options
@hidden("--freeze-unknown", is_flag=True, help="As in `edgeprune prune`: blocks fx cannot trace kept whole.")
@hidden("--lam", type=click.FloatRange(min=0), default=1e-4)
@hidden("--steps", type=click.IntRange(min=1), default=1, help="Pruning steps, fine-tuned in between.")
@hidden("--step-epochs", type=click.IntRange(min=1), default=1)
@hidden("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01)
@hidden("--batch-size", type=click.IntRange(min=1), default=128)
@hidden("--tolerance", type=click.FloatRange(0, 1), default=0.15,
        help="Allowed shortfall of measured vs predicted speedup in the validation gate.")
@json_option
@click.pass_context
def compress_cmd(ctx, model, model_option, data, data_dir, input_size, workers, out_dir, pretrained, reg, reg_epochs,
                 finetune_epochs, max_steps, distill, calibration_data, calibration_count, freeze_unknown, lam, steps,
                 step_epochs, lr, batch_size, tolerance, as_json, **budget) -> None:  # fmt: skip
    """Sparsity training -> plan -> shrink -> fine-tune -> export -> validate MODEL, in one resumable run;
    exit code 4 when the measured speedup falls short of the prediction.

    \b
    edgeprune compress cifar_resnet56 --pretrained --target cpu-ort --latency 0.75x --out runs/r56
    edgeprune compress --config job.toml        # model = "...", target = "...", latency = "0.75x", ...
    """
    from edgeprune.compress import CompressConfig, compress, format_summary
    from edgeprune.targets import load_target
    from edgeprune.train.trainer import TrainConfig

    ref = resolve_model_arg(model or ctx.lookup_default("model"), model_option)
    if not out_dir:
        raise click.UsageError("missing --out DIR (or `out` in the --config file)")
    check_data_options(ctx, data)
    if reg == "none":
        forbid(ctx, ("lam", "reg_epochs"), "with --reg none (no sparsity training)")
    if steps == 1:
        forbid(ctx, ("step_epochs",), "with one pruning step (--steps 1): there is no fine-tune between steps")
    settings = prune_settings(ctx, budget)
    calibration_from(ctx, calibration_data, calibration_count)  # the usage check; compress loads its own
    load_target(budget["target_name"])

    def train_cfg(epochs: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, max_steps_per_epoch=max_steps)

    cfg = CompressConfig(
        ref, budget["target_name"], settings, pretrained, data, data_dir, reg, {} if reg == "none" else {"lam": lam},
        train_cfg(reg_epochs if reg != "none" else 0), train_cfg(finetune_epochs), steps, step_epochs,
        budget["profile_path"], tolerance, distill, input_size, workers, calibration_data, calibration_count,
        freeze_unknown,
    )  # fmt: skip
    summary = compress(cfg, out_dir)
    emit(as_json, summary, lambda: format_summary(summary))
    if not summary["gate"]["passed"]:
        ctx.exit(4)
