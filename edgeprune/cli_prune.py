"""Pruning commands: prune (plan + shrink under a budget) and compress (the whole pipeline)."""

from __future__ import annotations

import click

from edgeprune.cli_util import _DOMAIN_ERRORS, _fail


def _budget_options(fn):
    opts = [
        click.option("--target", "target_name", required=True, help="Device target (see `edgeprune targets`)."),
        click.option("--latency", help="Latency budget: 0.5x of the unpruned model, or 3.2ms."),
        click.option("--macs", help="MACs budget: 0.5x, or MMACs."),
        click.option("--params", help="Parameter budget: 0.5x, or millions."),
        click.option("--rank-by", type=click.Choice(["latency", "macs"]), default=None,
                     help="What a step saves: latency (default when a profile is used) or macs (FLOPs-driven)."),
        click.option("--solver", type=click.Choice(["greedy", "knapsack"]), default="greedy", show_default=True),
        click.option("--min-channels", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Channels every group keeps at least."),
        click.option("--max-removed", type=click.FloatRange(0, 1, max_open=True), default=0.75, show_default=True,
                     help="Largest fraction removed from any group (the OICSR paper uses 0.5)."),
        click.option("--max-removed-shared", type=click.FloatRange(0, 1, max_open=True), default=0.0,
                     show_default=True, help="Largest fraction removed from a residual stream (a group several "
                     "layers write to); 0 keeps streams whole."),
        click.option("--remove-branches", is_flag=True,
                     help="Let a group that is the whole inside of a residual branch go to zero channels: the "
                     "branch is removed and its layers stop running (ResNet basic blocks, MobileNet-V2 blocks)."),
        click.option("--align", type=click.IntRange(min=1), default=None,
                     help="Keep widths at multiples of this (default: the target's channel blocking; 1: off)."),
        click.option("--no-snap", is_flag=True, help="Do not snap widths to the latency staircase / alignment."),
        click.option("--measured-rounds", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Time the plan on the target beside the unpruned model and plan again, up to this many "
                     "plans, until the measured latency meets --latency (the target must run here; 0: trust the "
                     "profile's prediction)."),
        click.option("--profile", "profile_path", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Latency profile (default: profiles/<target>--<this device>.json)."),
    ]  # fmt: skip
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def prune_settings(latency, macs, params, rank_by, solver, min_channels, max_removed, max_removed_shared, align,
                   no_snap, measured_rounds=0, remove_branches=False):  # fmt: skip
    """PruneSettings from the budget options (exactly one budget)."""
    from edgeprune.plan.planner import Budget, PlanConstraints
    from edgeprune.plan.run import PruneSettings

    given = [(k, v) for k, v in (("latency", latency), ("macs", macs), ("params", params)) if v is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one budget: --latency, --macs or --params")
    budget = Budget.parse(*given[0])
    ranked_by = rank_by or ("macs" if budget.kind != "latency" else "latency")
    constraints = PlanConstraints(min_channels=min_channels, max_removed=max_removed,
                                  max_removed_shared=max_removed_shared, snap=not no_snap,
                                  remove_branches=remove_branches)  # fmt: skip
    if measured_rounds and budget.kind != "latency":
        raise click.UsageError("--measured-rounds needs a --latency budget")
    return PruneSettings(budget, ranked_by, solver, constraints, align, measured_rounds)


@click.command("prune")
@click.argument("model_ref")
@_budget_options
@click.option("--pretrained", is_flag=True, help="Pretrained weights (registry names).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="New folder for the result.")
def prune_cmd(model_ref, target_name, profile_path, pretrained, out_dir, **budget) -> None:
    """Plan and shrink MODEL_REF (training run, pruned folder or registry name) under a budget on a target.

    Writes plan.json, plan.md (per-group widths, predicted totals), plan_result.json and model/.
    """
    from edgeprune.latency import ProfileError
    from edgeprune.plan.run import prune_run
    from edgeprune.targets import TargetError

    try:
        settings = prune_settings(**budget)
        result = prune_run(model_ref, target_name, settings, out_dir, profile_path, pretrained)
    except (*_DOMAIN_ERRORS, TargetError, ProfileError, FileExistsError) as exc:
        _fail(exc)
    click.echo(result.table())
    if result.extrapolated:
        click.echo(f"note: {len(result.extrapolated)} layer widths lie outside the profile's grid (clamped)")
    click.echo(f"wrote {out_dir}: plan.json, plan.md, model/")


@click.command("compress")
@click.option("--model", required=True, help="Registry name (or a pruned folder / training run).")
@click.option("--pretrained", is_flag=True, help="Start from pretrained weights.")
@click.option("--data", type=click.Choice(["cifar10", "cifar10-torchvision", "synthetic"]), default="cifar10",
              show_default=True)
@click.option("--data-dir", default=None, help="Data folder (default: $EDGEPRUNE_DATA or ../shared/data).")
@_budget_options
@click.option("--reg", type=click.Choice(["none", "oicsr", "group_lasso", "slimming", "ssr_l21", "ssr_l20"]),
              default="oicsr", show_default=True, help="Regularizer of the training stage.")
@click.option("--lam", type=click.FloatRange(min=0), default=1e-4, show_default=True)
@click.option("--reg-epochs", type=click.IntRange(min=0), default=2, show_default=True,
              help="Regularized training epochs (0 skips the stage).")
@click.option("--steps", type=click.IntRange(min=1), default=1, show_default=True,
              help="Pruning steps; each but the last is followed by --step-epochs of fine-tuning.")
@click.option("--step-epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Cap on steps per epoch (quick runs).")
@click.option("--tolerance", type=click.FloatRange(0, 1), default=0.15, show_default=True,
              help="Allowed shortfall of measured vs predicted speedup in the validation gate.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Run folder; re-running the same command resumes at the first unfinished stage.")
def compress_cmd(model, pretrained, data, data_dir, target_name, profile_path, reg, lam, reg_epochs, steps,
                 step_epochs, finetune_epochs, lr, batch_size, max_steps, tolerance, out_dir, **budget) -> None:
    """Regularized training -> plan -> shrink -> fine-tune -> export -> validate, in one resumable run."""
    import sys

    from edgeprune.compress import CompressConfig, CompressError, Interrupted, compress, format_summary
    from edgeprune.export import ExportError
    from edgeprune.latency import ProfileError
    from edgeprune.targets import TargetError, load_target
    from edgeprune.train.run import RunError
    from edgeprune.train.trainer import TrainConfig, TrainingDiverged
    from edgeprune.validate import ValidationError

    def train_cfg(epochs):
        return TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, max_steps_per_epoch=max_steps)

    try:
        load_target(target_name)
        cfg = CompressConfig(
            model, target_name, prune_settings(**budget), pretrained, data, data_dir, reg,
            {} if reg == "none" else {"lam": lam}, train_cfg(reg_epochs if reg != "none" else 0),
            train_cfg(finetune_epochs), steps, step_epochs, profile_path, tolerance,
        )  # fmt: skip
        summary = compress(cfg, out_dir)
    except Interrupted as exc:
        click.echo(str(exc), err=True)
        sys.exit(130)
    except (*_DOMAIN_ERRORS, TargetError, ProfileError, CompressError, RunError, TrainingDiverged, ExportError,
            ValidationError) as exc:  # fmt: skip
        _fail(exc)
    click.echo(format_summary(summary))
    if not summary["gate"]["passed"]:
        sys.exit(4)
