"""`edgeprune prune`: plan under a budget on a target (or apply a plan / a ratio) and shrink the model."""

from __future__ import annotations

import click

from edgeprune.cli.common import (
    emit,
    forbid,
    freeze_unknown_option,
    hidden,
    json_option,
    model_argument,
    options,
    profile_option,
    resolve_model_arg,
    target_option,
    weights_options,
)

BUDGETS = ("latency", "macs", "params")
# options that only mean something when planning under a budget
PLANNING = ("target_name", "rank_by", "measured_rounds", "compare_plans", "no_compare_plans", "remove_branches",
            "profile_path", "solver", "min_channels", "max_removed", "max_removed_shared", "align",
            "no_snap", "width_power", "int8_layers")  # fmt: skip

calibration_options = options(
    click.option("--calibration-data", metavar="DATA", default=None,
                 help="Rank channels by the output change without them on images of DATA (named set, image "
                      "folder with or without class folders, dataset yaml); fold removed channels' means into the "
                      "next layers and refit those layers."),
    click.option("--calibration-count", type=click.IntRange(min=1), default=None, metavar="N",
                 help="Images --calibration-data measures on [default: 64]."),
)  # fmt: skip


def calibration_from(ctx: click.Context, data: str | None, count: int | None):
    """The calibration loader of the options (None without --calibration-data, where a count is a usage error)."""
    from edgeprune.train.calibration import calibration_loader

    if data is None:
        forbid(ctx, ("calibration_count",), "without --calibration-data")
    return calibration_loader(data, count)


budget_options = options(
    target_option,
    click.option("--latency", metavar="B", help="Latency budget: 0.8x of the unpruned model's, or 3.2ms."),
    click.option("--macs", metavar="B", help="MACs budget: 0.5x, or MMACs."),
    click.option("--params", metavar="B", help="Parameter budget: 0.5x, or millions."),
    click.option("--measured-rounds", type=click.IntRange(min=0), default=None, metavar="N",
                 help="Time up to N plans until the measured latency meets --latency (default: 4 where the "
                      "profile was measured on this device, else 0)."),
    click.option("--compare-plans", is_flag=True,
                 help="Time a latency-ranked, a MACs-ranked and a uniform plan on the target and keep the "
                      "fastest: the default for --macs/--params where the profile was measured on this device "
                      "(--no-compare-plans prices them instead)."),
    click.option("--remove-branches", is_flag=True,
                 help="Let whole residual branches go (ResNet basic blocks, MobileNet-V2 blocks)."),
    click.option("--rank-by", type=click.Choice(["latency", "macs"]), default=None,
                 help="What a removal saves: latency or macs (FLOPs-driven). Default: latency; for --macs/--params "
                      "the fastest plan shape (--compare-plans); macs where the profile lacks the model's layers."),
    profile_option,
    hidden("--no-compare-plans", is_flag=True, help="Price the plan shapes by the profile, even on its device."),
    hidden("--solver", type=click.Choice(["greedy", "knapsack"]), default="greedy"),
    hidden("--min-channels", type=click.IntRange(min=1), default=1, help="Channels every group keeps."),
    hidden("--max-removed", type=click.FloatRange(0, 1, max_open=True), default=0.75,
           help="Largest fraction removed from any group (the OICSR paper uses 0.5)."),
    hidden("--max-removed-shared", type=click.FloatRange(0, 1, max_open=True), default=0.0,
           help="Largest fraction removed from a residual stream; 0 keeps streams whole."),
    hidden("--align", type=click.IntRange(min=1), default=None,
           help="Keep widths at multiples of this (default: the target's blocking; 1: off)."),
    hidden("--no-snap", is_flag=True, help="Do not snap widths to the latency staircase / alignment."),
    hidden("--width-power", type=click.FloatRange(0, 1), default=None,
           help="Group scores are divided by their mean and by the group's width to this power [default: 0: "
                "a channel counts alike in every group; 1: halving any group costs alike]."),
)  # fmt: skip


def prune_settings(ctx: click.Context, o: dict):
    """PruneSettings from the budget options: exactly one budget; options it would ignore are usage errors."""
    from edgeprune.plan.budget import Budget, PlanConstraints
    from edgeprune.plan.run import PruneSettings

    given_budgets = [k for k in BUDGETS if o.get(k) is not None]
    if len(given_budgets) != 1:
        raise click.UsageError("give exactly one budget: --latency, --macs or --params")
    if not o.get("target_name"):
        raise click.UsageError("a budget is planned for a device: give --target (see `edgeprune targets`)")
    kind = given_budgets[0]
    budget = Budget.parse(kind, o[kind])
    if kind != "latency":
        forbid(ctx, ("measured_rounds",), "without a --latency budget (they time latency)")
    power = PlanConstraints.width_power if o["width_power"] is None else o["width_power"]
    constraints = PlanConstraints(min_channels=o["min_channels"], max_removed=o["max_removed"],
                                  max_removed_shared=o["max_removed_shared"], snap=not o["no_snap"],
                                  remove_branches=o["remove_branches"], width_power=power)  # fmt: skip
    # a latency budget always ranks by latency (so written: compress runs saved before "auto" resume as they were)
    ranked_by = o["rank_by"] or ("latency" if kind == "latency" else "auto")
    if o["compare_plans"]:
        forbid(ctx, ("measured_rounds", "rank_by", "no_compare_plans"), "with --compare-plans (it tries every ranking)")
    # None: timed where the profile was measured on this device (plan/run.py on_its_device)
    compare = True if o["compare_plans"] else False if o.get("no_compare_plans") else None
    return PruneSettings(budget, ranked_by, o["solver"], constraints, o["align"], o["measured_rounds"], compare)


@click.command("prune", short_help="Plan under a budget (or a ratio/plan) and shrink.")
@model_argument
@budget_options
@click.option("--ratio", type=click.FloatRange(0.0, 1.0, max_open=True), default=None, metavar="R",
              help="Instead of a budget: remove this fraction of every prunable group (lowest weight energy).")
@click.option("--plan", "plan_path", type=click.Path(exists=True, dir_okay=False), default=None, metavar="FILE",
              help="Instead of a budget: apply this plan.json.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, metavar="DIR",
              help="New folder for the result.")
@weights_options
@click.option("--input-size", type=click.IntRange(min=8), default=None, metavar="PX",
              help="Square input side (a sequence model's length) to plan at (default: the size saved with MODEL, "
              "else the registry's).")
@freeze_unknown_option
@calibration_options
@click.option("--int8-layers", type=click.Choice(["all", "measured"]), default=None, metavar="HOW",
              help="int8 targets: time plans as validate's --int8-layers HOW ships them (all, measured) "
                   "[default: the target's].")
@hidden("--steps", type=click.IntRange(min=1), default=1,
        help="Reach the budget in N prunes without training between them (each measures and refits anew).")
@json_option
@click.pass_context
def prune_cmd(ctx, model, model_option, ratio, plan_path, out_dir, pretrained, input_size, freeze_unknown,
              calibration_data, calibration_count, steps, as_json, **o) -> None:  # fmt: skip
    """Plan MODEL under a budget on a target and shrink it; or shrink it by a ratio or a plan file.

    MODEL is a registry name, a training run (its sparsity-trained importance is used) or a pruned folder.
    Writes plan.json, plan.md and the pruned model in model/, checked against the masked original first.

    \b
    edgeprune prune cifar_resnet56 --pretrained --target cpu-ort --latency 0.7x --out runs/r56-0.7x
    edgeprune prune cifar_resnet56 --ratio 0.3 --out runs/r56-30pct
    """
    ref = resolve_model_arg(model, model_option)
    calibration = calibration_from(ctx, calibration_data, calibration_count)
    if ratio is not None or plan_path is not None:
        if ratio is not None and plan_path is not None:
            raise click.UsageError("give one of --ratio and --plan")
        forbid(ctx, (*BUDGETS, *PLANNING, "steps"), "with --ratio or --plan (they plan under a budget)")
        from edgeprune.plan.run import shrink_run

        summary = shrink_run(ref, pretrained, ratio, plan_path, out_dir, freeze_unknown=freeze_unknown,
                             input_size=input_size, calibration=calibration)
        emit(as_json, summary, f"{ref}: params {summary['params_before']:,} -> {summary['params_after']:,} "
             f"({summary['params_after'] / summary['params_before']:.1%}); oracle error "
             f"{summary['oracle_error']:.1e}; wrote {out_dir}: plan.json, model/")  # fmt: skip
        return
    from edgeprune.plan.run import prune_in_steps

    settings = prune_settings(ctx, o)
    if steps > 1 and settings.compare_plans:
        forbid(ctx, ("steps",), "with --compare-plans")
    if steps > 1 and calibration is None:
        raise click.UsageError("--steps needs --calibration-data: each step measures importance and refits anew")
    target = o["target_name"]
    if o["int8_layers"]:
        from edgeprune.cli.deploy import int8_target

        target = int8_target(ctx, target, None, o["int8_layers"])
    result = prune_in_steps(ref, target, settings, out_dir, steps, pretrained,
                            profile_path=o["profile_path"], freeze_unknown=freeze_unknown, input_size=input_size,
                            calibration=calibration)  # fmt: skip

    def text() -> str:
        lines = [result.table()]
        if result.extrapolated:
            lines.append(f"note: {len(result.extrapolated)} layer widths lie outside the profile's grid (clamped)")
        return "\n".join([*lines, f"wrote {out_dir}: plan.json, plan.md, model/"])

    emit(as_json, {**result.to_dict(), "out": out_dir}, text)


@click.command("shrink", hidden=True)
@click.argument("model")
@click.option("--plan", "plan_path", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--ratio", type=click.FloatRange(0.0, 1.0, max_open=True), default=None)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--pretrained", is_flag=True)
def shrink_cmd(model, plan_path, ratio, out_dir, pretrained) -> None:
    """Older spelling of `prune MODEL --ratio R | --plan FILE` (writes the model files into --out itself)."""
    if (plan_path is None) == (ratio is None):
        raise click.UsageError("give exactly one of --plan FILE or --ratio R")
    from edgeprune.plan.run import shrink_run

    s = shrink_run(model, pretrained, ratio, plan_path, out_dir, layout="flat")
    click.echo(f"{model}: params {s['params_before']:,} -> {s['params_after']:,} "
               f"({s['params_after'] / s['params_before']:.1%}); oracle error {s['oracle_error']:.1e}; wrote {out_dir}")

