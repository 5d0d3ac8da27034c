"""The ``edgeprune`` command line: thin wrappers that parse, call the library, and print.

Exit codes: 0 success; 1 a domain error (bad plan, unsupported op, missing data), with the cause on
stderr; 2 a usage error (unknown option, bad value); 3 (validate) exported numerics do not match torch;
4 (validate) the measured speedup falls short of the prediction by more than --tolerance.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import torch

from edgeprune.cli_prune import compress_cmd, prune_cmd
from edgeprune.cli_train import eval_cmd, finetune_cmd, train_cmd
from edgeprune.cli_util import _DOMAIN_ERRORS, _fail
from edgeprune.graph import build_graph
from edgeprune.graph.groups import ChannelGraph
from edgeprune.models import create_model_for_size, get_entry, list_models
from edgeprune.prune import (
    Plan,
    prune_model,
    save_pruned,
    uniform_plan,
)
from edgeprune.prune.oracle import check_shrunk


def _model_options(fn):
    fn = click.option(
        "--freeze-unknown", is_flag=True, help="Freeze channels around unsupported ops instead of failing."
    )(fn)
    fn = click.option(
        "--input-size", type=click.IntRange(min=8), default=None, help="Square input side (default: the model's)."
    )(fn)
    fn = click.option("--pretrained", is_flag=True, help="Load pretrained weights.")(fn)
    return click.argument("model")(fn)


def _build(model: str, pretrained: bool, input_size: int | None, freeze_unknown: bool):
    entry = get_entry(model)
    size = input_size or entry.input_size[1]
    net = create_model_for_size(model, size, pretrained=pretrained).eval()
    kwargs = {entry.size_kwarg: size} if entry.size_kwarg else {}
    example = torch.randn(1, entry.input_size[0], size, size)
    graph = build_graph(net, example, model_name=model, model_kwargs=kwargs, freeze_unknown=freeze_unknown)
    return net, example, graph


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgeprune")
def main() -> None:
    """edgeprune: structured pruning driven by latency measured on the target device."""


@main.command("models")
@click.option("--family", type=click.Choice(["cifar", "torchvision"]), default=None, help="Only this family.")
def models_cmd(family: str | None) -> None:
    """List the models that can be built by name."""
    for name in list_models(family):
        e = get_entry(name)
        c, h, w = e.input_size
        pre = "pretrained" if e.has_pretrained else ""
        click.echo(f"{name:28s} {e.family:12s} {c}x{h}x{w:<5d} {pre}")


@main.command("targets")
@click.option("--targets-dir", type=click.Path(file_okay=False), default=None, help="Extra folder of target TOMLs.")
def targets_cmd(targets_dir: str | None) -> None:
    """List the targets and whether each can run on this machine (and why not)."""
    from edgeprune.backends import unavailable_reason
    from edgeprune.targets import TargetError, list_targets, load_target

    for name in list_targets(targets_dir):
        try:
            t = load_target(name, targets_dir)
        except TargetError as exc:
            click.echo(f"{name:22s} invalid: {exc}")
            continue
        why = unavailable_reason(t)
        status = "runs here" if why is None else f"not here: {why}"
        click.echo(f"{name:22s} {t.backend:12s} {t.device:5s} {t.precision:5s} {status}")


@main.command("kit")
@click.argument("target")
@click.option("--model", "models", multiple=True, required=True, help="Model(s) whose layers to profile; repeatable.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Kit folder to create.")
def kit_cmd(target, models, out_dir) -> None:
    """Write a device kit: ONNX micro-models + manifest for tools/collect_profile.py (no torch needed there)."""
    from edgeprune.latency.kit import write_kit
    from edgeprune.targets import TargetError, load_target

    try:
        t = load_target(target)
        for m in models:
            get_entry(m)
        out = write_kit(t, list(models), out_dir)
    except (*_DOMAIN_ERRORS, TargetError, FileExistsError) as exc:
        _fail(exc)
    click.echo(f"wrote kit {out}; on the device: python collect_profile.py {out}; then: "
               f"edgeprune profile {target} --model ... --import {out}/result.json")


@main.command("profile")
@click.argument("target")
@click.option("--model", "models", multiple=True, help="Model(s) whose layers to profile; repeatable.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Profile file (default: profiles/<target>--<device>.json).")
@click.option("--budget-s", type=click.FloatRange(min=1), default=None, help="Stop (resumably) after this long.")
@click.option("--check", "check_plans", type=click.IntRange(min=1), default=None,
              help="Instead of profiling: measure this many random plans and report the predictor's error.")
@click.option("--passes", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --check: time every plan this many times, to show how repeatable the measurement is.")
@click.option("--strict", is_flag=True, help="A profile from another device or runtime is an error, not a warning.")
@click.option("--import", "import_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Install a kit result (from tools/collect_profile.py) as a profile instead of measuring.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Instead of profiling: draw latency vs channels for the models' costliest layers (PNG).")
@click.option("--in-network", is_flag=True,
              help="Instead of profiling: fit the profile's in-network width corrections on the models "
                   "(variants timed beside the dense model; minutes).")
@click.option("--removal", is_flag=True,
              help="Instead of profiling: measure what removing each kind of residual branch saves inside the "
                   "models (variants timed beside the dense model; minutes).")
@click.option("--recalibrate", is_flag=True,
              help="Instead of profiling: time the models' calibration variants again and refit the "
                   "calibration (layer tables kept; minutes).")
@click.option("--layer-timing", type=click.Choice(["wall", "kernel"]), default="wall", show_default=True,
              help="Time layers by the wall clock, or (CPU onnxruntime) by the profiler's compute-kernel time.")
def profile_cmd(target, models, out_path, budget_s, check_plans, passes, strict, import_path, plot_path,
                in_network, removal, recalibrate, layer_timing) -> None:
    """Measure TARGET's latency profile for the layers of the given models (or --check / --import it)."""
    from edgeprune.latency.check import check_profile, describe_check
    from edgeprune.latency.innet import UnsteadyMeasurement, fit_width_scales
    from edgeprune.latency.kit import import_result
    from edgeprune.latency.profile import Profile, ProfileError, default_profile_path, device_fingerprint
    from edgeprune.latency.profiler import ProfileBudgetExceeded, profile_target, recalibrate_profile
    from edgeprune.targets import TargetError, load_target

    try:
        t = load_target(target)
        if import_path:
            profile = import_result(import_path)
            if profile.target.get("name") != t.name:
                measured_for = profile.target.get("name")
                raise ProfileError(f"{import_path} was measured for target {measured_for!r}, not {t.name!r}")
            path = Path(out_path or default_profile_path(t.name, profile.device))
            profile.save(path)
            click.echo(f"installed {path}: {len(profile.tables)} layer tables from {profile.device.get('cpu')}")
            return
        if not models:
            raise click.UsageError("give at least one --model")
        for m in models:
            get_entry(m)
        path = Path(out_path or default_profile_path(t.name, device_fingerprint(t.backend)))
        if plot_path:
            from edgeprune.latency.layers import collect_layers
            from edgeprune.latency.profiler import build_model, model_input_shape
            from edgeprune.latency.staircase import plot_staircases

            profile = Profile.load(path, strict=strict)
            layers = [x for m in models for x in collect_layers(build_model(m, t), model_input_shape(m, t))]
            keys = plot_staircases(profile, layers, plot_path)
            click.echo(f"wrote {plot_path}: {len(keys)} layer geometries")
            return
        if in_network and removal:
            raise click.UsageError("--in-network and --removal are two fits: give one")
        if in_network or removal:
            from edgeprune.latency.removal import fit_removal_scales

            profile = Profile.load(path, strict=strict)
            fit = fit_width_scales if in_network else fit_removal_scales
            for m in models:
                for r in fit(profile, t, m):
                    detail = (f"(width scale {r['width_scale']})" if in_network
                              else f"{100 * r['macs_removed']:.1f} % of the MACs removed")  # fmt: skip
                    click.echo(f"{m} {r['variant']}: measured {r['measured_ratio']:.3f} of dense, predicted "
                               f"{r['predicted_ratio_before']:.3f} -> {r['predicted_ratio_after']:.3f}; {detail}")
            profile.save(path)  # only after every model's fit: a failure leaves the file as it was
            what = "in-network width corrections" if in_network else "removal savings"
            click.echo(f"wrote {path}: {what} for {', '.join(models)}")
            return
        if recalibrate:
            profile = recalibrate_profile(Profile.load(path, strict=strict), t, list(models))
            profile.save(path)  # only after every model was measured: a failure leaves the file as it was
            lines = [f"{m}: {c.scale:.3f} x layers {c.offset_ms:+.3f} ms" for m, c in profile.calibration.items()]
            click.echo(f"wrote {path}: recalibrated {', '.join(models)}; misalignment term {profile.misalign or 'none'}"
                       + "".join(f"\n  {line}" for line in lines))
            return
        if check_plans is None:
            profile = profile_target(t, list(models), path, budget_s, timing=layer_timing)
            click.echo(f"wrote {path}: {len(profile.tables)} layer tables, calibrated for {', '.join(models)}")
            return
        profile = Profile.load(path, strict=strict)
        for m in models:
            r = check_profile(profile, t, m, check_plans, passes=passes)
            click.echo(describe_check(r))
    except (*_DOMAIN_ERRORS, TargetError, ProfileError, ProfileBudgetExceeded, UnsteadyMeasurement) as exc:
        _fail(exc)


@main.command("export")
@click.argument("model")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="ONNX file to write.")
@click.option("--opset", type=click.IntRange(13, 23), default=18, show_default=True)
@click.option("--no-optimize", is_flag=True, help="Skip the exporter's graph simplification.")
@click.option("--pretrained", is_flag=True, help="Load pretrained weights (registry names).")
def export_cmd(model, out_path, opset, no_optimize, pretrained) -> None:
    """Export MODEL (registry name or pruned-model folder) to one ONNX file, checked against torch."""
    from edgeprune.export import ExportError, check_onnx, export_onnx
    from edgeprune.validate import ValidationError, resolve_model

    try:
        ref = resolve_model(model, pretrained)
        x = torch.randn(1, *ref.input_chw)
        result = export_onnx(ref.module, x, out_path, opset=opset, optimize=not no_optimize)
        err = check_onnx(ref.module, out_path, torch.randn(3, *ref.input_chw))
    except (*_DOMAIN_ERRORS, ExportError, ValidationError) as exc:
        _fail(exc)
    for note in result.notes:
        click.echo(f"note: {note}")
    data = " (+ external data file)" if result.external_data else ""
    click.echo(f"wrote {out_path}{data}: {result.exporter} exporter, opset {opset}, dynamic batch, "
               f"onnxruntime vs torch relative error {err:.1e}")


@main.command("validate")
@click.argument("original")
@click.argument("pruned")
@click.option("--target", "target_name", required=True, help="Target to measure on (see `edgeprune targets`).")
@click.option("--profile", "profile_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Latency profile for predicted latency (enables the speedup gate).")
@click.option("--data", type=click.Choice(["cifar10-lossless"]), default=None, help="Also measure accuracy.")
@click.option("--tolerance", type=click.FloatRange(0, 1), default=0.15, show_default=True,
              help="Allowed shortfall of measured vs predicted speedup.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Report folder.")
@click.option("--pretrained", is_flag=True, help="Load pretrained weights for a registry-name ORIGINAL.")
def validate_cmd(original, pruned, target_name, profile_path, data, tolerance, out_dir, pretrained) -> None:
    """Compare ORIGINAL and PRUNED on a target: MACs, predicted and measured latency, memory, accuracy."""
    from edgeprune.latency import Profile, ProfileError
    from edgeprune.targets import TargetError, load_target
    from edgeprune.validate import NumericsFailure, ValidationError, resolve_model, validate

    try:
        target = load_target(target_name)
        profile = Profile.load(profile_path) if profile_path else None
        report = validate(resolve_model(original, pretrained), resolve_model(pruned), target, out_dir, profile,
                          data, tolerance)
    except NumericsFailure as exc:
        click.echo(f"Error: numerics: {exc}", err=True)
        sys.exit(3)
    except (*_DOMAIN_ERRORS, TargetError, ProfileError, ValidationError) as exc:
        _fail(exc)
    d = report["derived"]
    predicted = f"{d['predicted_speedup']:.2f}x" if d["predicted_speedup"] else "n/a (no profile)"
    click.echo(f"MACs {d['macs_speedup']:.2f}x, predicted {predicted}, "
               f"measured {d['measured_speedup']:.2f}x, realization {d['realization']:.2f}; "
               f"report in {out_dir}/report.md")
    click.echo(("PASS: " if report["gate"]["passed"] else "FAIL: ") + report["gate"]["reason"])
    if not report["gate"]["passed"]:
        sys.exit(4)


@main.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report_cmd(run_dir) -> None:
    """Rebuild report.md and the charts from the report.json files under RUN_DIR."""
    from edgeprune.report import rebuild

    try:
        written = rebuild(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
    for w in written:
        click.echo(f"wrote {w}")


@main.command("graph")
@_model_options
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
@click.option("--all-members", is_flag=True, help="List every module of every group.")
def graph_cmd(model, pretrained, input_size, freeze_unknown, as_json, all_members) -> None:
    """Print MODEL's channel groups: id, size, members, prunable or frozen and why."""
    try:
        _, _, graph = _build(model, pretrained, input_size, freeze_unknown)
    except _DOMAIN_ERRORS as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(_graph_json(graph), indent=1))
        return
    n_prunable = len(graph.prunable_groups)
    n_frozen = len(graph.groups) - n_prunable
    click.echo(
        f"{graph.model_name}: {len(graph.groups)} groups, {n_prunable} prunable, {n_frozen} frozen; "
        f"input {tuple(graph.input_shape)}; fingerprint {graph.fingerprint}"
    )
    for g in graph.groups:
        status = "prunable" if g.prunable else f"frozen: {g.frozen}"
        partial = len(g.prunable_units)
        if g.prunable and partial < g.size:
            status += f" ({g.size - partial} channels frozen)"
        if g.id in graph.branches:
            status += f"; a whole residual branch (ends in {graph.branches[g.id].tail}: --remove-branches)"
        mods = g.modules()
        shown = ", ".join(f"{p}({'/'.join(sorted(k))})" for p, k in mods.items()) if all_members else g.describe()
        click.echo(f"  [{g.id:3d}] size {g.size:5d}  {status}\n        {shown}")


def _graph_json(graph: ChannelGraph) -> dict:
    return {
        "model": graph.model_name,
        "fingerprint": graph.fingerprint,
        "input_shape": list(graph.input_shape),
        "groups": [
            {
                "id": g.id,
                "size": g.size,
                "prunable": g.prunable,
                "frozen_reason": g.frozen,
                "frozen_units": g.size - len(g.prunable_units),
                "members": {p: sorted(k) for p, k in g.modules().items()},
                "branch_tail": graph.branches[g.id].tail if g.id in graph.branches else None,
            }
            for g in graph.groups
        ],
    }


@main.command("shrink")
@_model_options
@click.option("--plan", "plan_path", type=click.Path(exists=True, dir_okay=False), help="Plan JSON to apply.")
@click.option(
    "--ratio",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    help="Or: remove this fraction of every prunable group (lowest weight energy).",
)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), required=True,
    help="Folder for plan.json, arch.json, weights.safetensors.",
)  # fmt: skip
def shrink_cmd(model, pretrained, input_size, freeze_unknown, plan_path, ratio, out_dir) -> None:
    """Physically prune MODEL by a plan; checks the result against the masked original before writing."""
    if (plan_path is None) == (ratio is None):
        raise click.UsageError("give exactly one of --plan FILE or --ratio R")
    try:
        net, example, graph = _build(model, pretrained, input_size, freeze_unknown)
        plan = Plan.load(plan_path) if plan_path else uniform_plan(net, graph, ratio)
        pruned, spec = prune_model(net, graph, plan)
        err = check_shrunk(net, graph, plan, pruned, example.shape[1:])
        out = save_pruned(pruned, spec, out_dir)
        plan.save(Path(out) / "plan.json")
    except _DOMAIN_ERRORS as exc:
        _fail(exc)
    before = sum(p.numel() for p in net.parameters())
    after = sum(p.numel() for p in pruned.parameters())
    click.echo(f"{model}: params {before:,} -> {after:,} ({after / before:.1%}); oracle error {err:.1e}; wrote {out}")


main.add_command(train_cmd)
main.add_command(finetune_cmd)
main.add_command(eval_cmd)
main.add_command(prune_cmd)
main.add_command(compress_cmd)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
