"""`edgeprune profile ...`: measure a target's latency profile, check it, fit it, plot it, or take it to a device."""

from __future__ import annotations

from pathlib import Path

import click

from edgeprune.cli.common import PipelineGroup, emit, json_option, options, profile_option

models_option = click.option("--model", "models", multiple=True, required=True, metavar="MODEL",
                             help="Model whose layers to use; repeatable.")  # fmt: skip
out_file = click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
                        help="Profile file to write (default: this device's profile in the user folder).")  # fmt: skip
common = options(click.argument("target"), models_option)
size_option = click.option("--input-size", type=click.IntRange(min=8), default=None, metavar="PX",
                           help="Square input side, or a sequence model's length (default: each model's registry "
                                "size); its calibration line is kept apart from other sizes'.")  # fmt: skip


def _load_target(name: str, models: tuple[str, ...] = ()):
    """The target, after checking that every model name is known (before anything is measured)."""
    from edgeprune.models import get_entry
    from edgeprune.targets import load_target

    for m in models:
        get_entry(m)
    return load_target(name)


def _load(target, profile_path: str | None, strict: bool = False):
    """The profile to read: --profile, else this device's, else one of the target's shipped profiles."""
    from edgeprune.latency.profile import find_profile
    from edgeprune.latency.target_profile import load_for_target

    path = Path(profile_path) if profile_path else find_profile(target.name, target.backend)
    return load_for_target(target, path, strict), path


def _write_path(out_path: str | None, loaded: Path, target) -> Path:
    """Where a fitted profile goes: --out, else back where it came from unless that is a shipped profile
    (package data is never changed), else this device's file in the user folder."""
    from edgeprune.latency.profile import default_profile_path, device_fingerprint
    from edgeprune.paths import shipped_dir

    if out_path:
        return Path(out_path)
    if loaded.resolve().parent == shipped_dir("profiles").resolve():
        return default_profile_path(target.name, device_fingerprint(target.backend))
    return loaded


@click.group("profile", short_help="Measure, check, fit, plot or import latency profiles.", cls=PipelineGroup)
def profile_group() -> None:
    """Latency profiles: per-layer tables measured on a target, and the predictor built on them.

    \b
    edgeprune profile measure cpu-ort --model cifar_resnet56       measure here (minutes)
    edgeprune profile check cpu-ort --model cifar_resnet56         predictor error on random plans
    edgeprune profile kit jetson-orin-trt-fp16 --model M --out KIT  measure on a device without torch
    """


@profile_group.command("measure", short_help="Measure a target's per-layer latency tables.")
@common
@size_option
@out_file
@click.option("--budget-s", type=click.FloatRange(min=1), default=None,
              help="Stop after this many seconds; re-running resumes the partial profile.")
@click.option("--layer-timing", type=click.Choice(["wall", "kernel"]), default="wall", hidden=True,
              help="Time layers by wall clock or (CPU onnxruntime) by the profiler's kernel time.")  # fmt: skip
def measure_cmd(target, models, input_size, out_path, budget_s, layer_timing) -> None:
    """Measure TARGET's per-layer latency tables for MODELs' layers, and calibrate them end to end on uniform,
    random and the planner's own pruned plans."""
    from edgeprune.latency.profile import default_profile_path, device_fingerprint
    from edgeprune.latency.profiler import profile_target

    t = _load_target(target, models)
    path = Path(out_path) if out_path else default_profile_path(t.name, device_fingerprint(t.backend))
    profile = profile_target(t, list(models), path, budget_s, timing=layer_timing, side=input_size,
                             planner=_planner(t))
    click.echo(f"wrote {path}: {len(profile.tables)} layer tables, calibrated for {', '.join(models)}")
    retimed, spikes, timed = profile.disputed()
    if timed:
        tolerance = profile.settings.get("sweep", {}).get("tolerance", 0.1)
        click.echo(f"{retimed:,} of {timed:,} widths ({100 * retimed / timed:.0f} %) needed a third timing: their two "
                   f"passes were more than {100 * tolerance:.0f} % apart; {spikes:,} stood above their neighbours and "
                   f"were timed again beside them. The more there are, the busier the machine was, and the more of the "
                   f"staircase may be noise (`edgeprune profile plot` draws it).")  # fmt: skip


@profile_group.command("check", short_help="Predictor error on random plans, timed here.")
@common
@size_option
@click.option("--plans", type=click.IntRange(min=1), default=5, show_default=True,
              help="Random pruning plans to measure.")
@click.option("--passes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Time every plan this many times, to show how repeatable the measurement is; a plan "
                   "whose passes disagree by over 10 % is timed once more and keeps the median.")
@click.option("--planned-macs", "planned", multiple=True, metavar="B",
              help="Also time the latency-ranked plan the planner makes at this MACs budget (0.5x; repeatable) "
                   "and report its error apart: the plan a planner picks is the one its prices flatter most.")
@profile_option
@click.option("--strict", is_flag=True, help="A profile from another device or runtime is an error.")
@json_option
def check_cmd(target, models, input_size, plans, passes, planned, profile_path, strict, as_json) -> None:
    """Measure random pruned variants of MODELs on TARGET beside the dense model and report the predictor's
    error, in ms and in speedup."""
    from edgeprune.latency.check import check_profile, describe_check
    from edgeprune.plan.budget import Budget

    budgets = [Budget.parse("macs", b) for b in planned]  # a bad budget fails before anything is timed
    t = _load_target(target, models)
    profile, _ = _load(t, profile_path, strict)
    maker = _planner(t)(profile, list(planned)) if budgets else None
    reports = [check_profile(profile, t, m, plans, passes=passes, side=input_size, planned=maker) for m in models]
    emit(as_json, reports, lambda: "\n".join(describe_check(r) for r in reports))


def _planner(target):
    """What the profile stage plans with (it does not import the planning stage): for a profile and MACs budgets,
    the latency-ranked greedy plan on the target's channel blocking at each budget, as `prune` plans by default."""
    from edgeprune.plan.budget import Budget, PlanConstraints
    from edgeprune.plan.planner import plan_pruning
    from edgeprune.targets import channel_align

    constraints = PlanConstraints(align=channel_align(target))

    def planner(profile, budgets):
        def make(model, graph, layers, side):
            return [(f"latency-ranked plan at {b}", plan_pruning(model, graph, layers, b, "latency", profile,
                                                                 constraints=constraints, side=side).plan)
                    for b in (Budget.parse("macs", s) for s in budgets)]  # fmt: skip

        return make

    return planner


FITS = ("calibration", "widths", "removal", "spikes")


@profile_group.command("fit", short_help="Refit calibration, width or removal terms, or settle spikes.")
@click.argument("target")
@click.argument("what", type=click.Choice(FITS))
@models_option
@profile_option
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Profile file to write (default: back to the profile read; a shipped one goes to this "
                   "device's profile in the user folder).")  # fmt: skip
@click.option("--stored", is_flag=True,
              help="calibration only: refit on the runs the profile already holds, without timing (seconds; "
                   "for a profile fitted before its edgeprune version had a calibration form).")  # fmt: skip
def fit_cmd(target, what, models, profile_path, out_path, stored) -> None:
    """Refit one part of TARGET's profile from end-to-end runs of MODELs (minutes each).

    \b
    calibration  time the calibration runs again (the planner's plans among them) and refit (tables kept)
    widths       in-network width corrections: variants that narrow each layer kind
    removal      what removing each kind of residual branch saves (--remove-branches plans)
    spikes       time again, beside their neighbours, the widths of the models' tables that stand above
                 them (a slow spell of the machine, or the runtime's own slow path), then choose the
                 lookup and calibration again on the stored runs (seconds to minutes; no network timed)
    The profile is written only after every model was measured: a failure leaves it as it was.
    """
    from edgeprune.latency.calibration import describe, refit_profile
    from edgeprune.latency.innet import fit_widths
    from edgeprune.latency.profiler import recalibrate_profile
    from edgeprune.latency.removal import fit_removal

    if stored and what != "calibration":
        raise click.UsageError(f"--stored refits the calibration only; {what} needs new runs")
    t = _load_target(target, models)
    profile, loaded = _load(t, profile_path)
    path = _write_path(out_path, loaded, t)
    if what == "calibration":
        if stored:
            held = {m: profile.calibration[m].points if m in profile.calibration else [] for m in models}
            missing = [m for m, pts in held.items() if not pts or any("layers" not in p for p in pts)]
            if missing:
                raise click.UsageError(f"the profile holds no calibration runs with their layers for "
                                       f"{', '.join(missing)}: fit without --stored to time them")  # fmt: skip
            before, profile = profile, refit_profile(profile, list(models))
            for m in models:
                click.echo(f"{m}: {describe(before.calibration[m])} -> {describe(profile.calibration[m])}")
        else:
            profile = recalibrate_profile(profile, t, list(models), planner=_planner(t))
            for m, c in profile.calibration.items():
                click.echo(f"{m}: {describe(c)}")
    elif what == "spikes":
        from edgeprune.latency.spikes import settle_profile_spikes

        profile, rows = settle_profile_spikes(profile, t, list(models), progress=lambda k: click.echo(
            f"settling the spikes of {k}", err=True))  # fmt: skip
        for r in rows:
            click.echo(f"{r['table']} {r['cin']}->{r['cout']}: {r['stored_ms']:.4f} -> {r['settled_ms']:.4f} ms")
        moved = sum(abs(r["settled_ms"] / r["stored_ms"] - 1) > 0.1 for r in rows)
        click.echo(f"{len(rows)} widths timed beside their neighbours, {moved} moved by more than 10 %")
    else:
        fit = fit_widths if what == "widths" else fit_removal
        for m in models:
            profile, rows = fit(profile, t, m)
            for r in rows:
                detail = (f"(width scale {r['width_scale']})" if what == "widths"
                          else f"{100 * r['macs_removed']:.1f} % of the MACs removed")  # fmt: skip
                click.echo(f"{m} {r['variant']}: measured {r['measured_ratio']:.3f} of dense, predicted "
                           f"{r['predicted_ratio_before']:.3f} -> {r['predicted_ratio_after']:.3f}; {detail}")
    profile.save(path)
    click.echo(f"wrote {path}: {what} fitted for {', '.join(models)}")


@profile_group.command("plot", short_help="Plot latency against channels (the staircase).")
@common
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, metavar="FILE.png",
              help="PNG to write.")
@profile_option
def plot_cmd(target, models, out_path, profile_path) -> None:
    """Draw latency against channels (the staircase) for MODELs' costliest layer kinds on TARGET."""
    from edgeprune.latency.layers import collect_layers
    from edgeprune.latency.profiler import build_model, model_input_shape
    from edgeprune.latency.staircase import plot_staircases

    t = _load_target(target, models)
    profile, _ = _load(t, profile_path)
    layers = [x for m in models for x in collect_layers(build_model(m, t), model_input_shape(m, t))]
    keys = plot_staircases(profile, layers, out_path)
    click.echo(f"wrote {out_path}: {len(keys)} layer geometries")


@profile_group.command("kit", short_help="Write a kit to profile a device without torch.")
@common
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, metavar="DIR",
              help="Kit folder to create.")
@click.option("--planned-from", "planned_from", type=click.Path(exists=True, dir_okay=False), default=None,
              metavar="FILE", help="A profile imported from this device: write a small second kit of the plans the "
                                   "planner makes with it, to calibrate it on them.")  # fmt: skip
def kit_cmd(target, models, out_dir, planned_from) -> None:
    """Write a device kit for TARGET: ONNX micro-models, a manifest and the collector, for a device
    that has only onnxruntime (or TensorRT) and numpy.

    \b
    on the device:  python KIT/collect.py KIT      (or: python -m edgeprune.kit.collect KIT)
    back here:      edgeprune profile import TARGET KIT/result.json --out P.json
    then, to calibrate P on the planner's own plans as `profile measure` does:
      edgeprune profile kit TARGET --model M --planned-from P.json --out KIT2
      (on the device: python KIT2/collect.py KIT2)
      edgeprune profile import TARGET KIT2/result.json --profile P.json
    """
    from edgeprune.latency.kit import write_kit

    t = _load_target(target, models)
    planned = (_load(t, planned_from)[0], _planner(t)) if planned_from else None
    out = write_kit(t, list(models), out_dir, planned=planned)
    extra = f" --profile {planned_from}" if planned_from else ""
    click.echo(f"wrote kit {out}; on the device: python {out}/collect.py {out}; then: "
               f"edgeprune profile import {target} {out}/result.json{extra}")


@profile_group.command("import", short_help="Install a kit's result as a profile.")
@click.argument("target")
@click.argument("result", type=click.Path(exists=True, dir_okay=False))
@out_file
@click.option("--profile", "into_path", type=click.Path(exists=True, dir_okay=False), default=None, metavar="FILE",
              help="For a kit written with --planned-from: the profile to add its runs to (written back to it "
                   "unless --out).")  # fmt: skip
def import_cmd(target, result, out_path, into_path) -> None:
    """Install a device kit's RESULT (result.json) as TARGET's profile for that device, or add a planned kit's
    runs to the profile they were planned with (--profile)."""
    from edgeprune.latency.kit import import_result
    from edgeprune.latency.profile import ProfileError, default_profile_path

    t = _load_target(target)
    into = _load(t, into_path)[0] if into_path else None
    profile = import_result(result, into)
    if profile.target.get("name") != t.name:
        raise ProfileError(f"{result} was measured for target {profile.target.get('name')!r}, not {t.name!r}")
    if into_path:  # back where it came from, unless that is a shipped profile (see _write_path)
        path = _write_path(out_path, Path(into_path), t)
    else:
        path = Path(out_path) if out_path else default_profile_path(t.name, profile.device)
    profile.save(path)
    click.echo(f"installed {path}: {len(profile.tables)} layer tables from {profile.device.get('cpu')}"
               + (", calibrated on the planner's own plans" if into else ""))  # fmt: skip
