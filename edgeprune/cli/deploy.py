"""After pruning: export to ONNX, validate on a target, rebuild reports."""

from __future__ import annotations

import click

from edgeprune.cli.common import (
    emit,
    forbid,
    json_option,
    model_argument,
    options,
    profile_option_with,
    resolve_model_arg,
    weights_options,
)

int8_options = options(
    click.option("--calibration-data", metavar="NAME|DIR", default=None,
                 help="int8 targets: calibrate on this data set, image folder (class folders or a plain folder of "
                 "images: no labels needed) or dataset yaml (default: the target's calibration_data; validate: "
                 "else --data)."),
    click.option("--calibration-count", type=click.IntRange(min=1), default=None, metavar="N",
                 help="int8 targets: calibrate on N images (default: the target's calibration_count)."),
    click.option("--int8-layers", type=click.Choice(["all", "measured"]), default=None,
                 help="int8 targets: quantize every layer the quantizer takes (all), or leave in fp32 the parts "
                 "and kinds of layers that time faster in fp32 here (measured; minutes on a large model) "
                 "[default: the target's int8_layers]."),
)  # fmt: skip


def int8_target(ctx: click.Context, name: str, calibration_count: int | None, int8_layers: str | None):
    """The target NAME with the int8 options applied; a usage error for an option the target cannot use."""
    from dataclasses import replace

    from edgeprune.targets import INT8_LAYER_BACKENDS, load_target

    target = load_target(name)
    if target.precision != "int8":
        forbid(ctx, ("calibration_data", "calibration_count", "int8_layers"), f"with {target.name}, which is not int8")
    elif calibration_count:
        target = replace(target, calibration_count=calibration_count)
    if int8_layers and target.backend not in INT8_LAYER_BACKENDS:
        forbid(ctx, ("int8_layers",), f"with {target.name}: {target.backend} quantizes every layer it takes")
    elif int8_layers:
        target = replace(target, int8_layers=int8_layers)
    return target


@click.command("export", short_help="Export a model to ONNX, or to what a target's runtime loads.")
@model_argument
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, metavar="FILE",
              help="File to write: FILE.onnx; with an OpenVINO int8 target FILE.xml (+ FILE.bin), with an "
              "ExecuTorch target FILE.pte.")
@click.option("--target", "target_name", default=None, metavar="NAME",
              help="Write what NAME's runtime loads, built as validate measures it (int8: the quantized model, "
              "calibrated on --calibration-data) [default: the fp32 ONNX export].")
@int8_options
@click.option("--opset", type=click.IntRange(13, 23), default=18, show_default=True)
@click.option("--no-optimize", is_flag=True, help="Skip the exporter's graph simplification.")
@weights_options
@json_option
@click.pass_context
def export_cmd(ctx, model, model_option, out_path, target_name, calibration_data, calibration_count, int8_layers,
               opset, no_optimize, pretrained, as_json) -> None:  # fmt: skip
    """Export MODEL (registry name or pruned-model folder) to one ONNX file with a dynamic batch,
    checked against torch in onnxruntime; with --target, the file that target's runtime loads."""
    import torch

    from edgeprune.export import check_onnx, export_onnx
    from edgeprune.validation import resolve_model

    if not target_name:
        forbid(ctx, ("calibration_data", "calibration_count", "int8_layers"), "without --target")
    ref = resolve_model(resolve_model_arg(model, model_option), pretrained)
    if target_name:
        target = int8_target(ctx, target_name, calibration_count, int8_layers)
        return export_for_target(ref, target, out_path, calibration_data, as_json, opset=opset,
                                 optimize=not no_optimize)  # fmt: skip
    result = export_onnx(ref.module, torch.randn(1, *ref.input_chw), out_path, opset=opset, optimize=not no_optimize)
    err = check_onnx(ref.module, out_path, torch.randn(3, *ref.input_chw))
    data = {"out": out_path, "exporter": result.exporter, "opset": opset, "external_data": result.external_data,
            "notes": result.notes, "max_rel_error": err}  # fmt: skip
    extra = " (+ external data file)" if result.external_data else ""
    emit(as_json, data, "".join(f"note: {n}\n" for n in result.notes)
         + f"wrote {out_path}{extra}: {result.exporter} exporter, opset {opset}, dynamic batch, "
         f"onnxruntime vs torch relative error {err:.1e}")  # fmt: skip


def export_for_target(ref, target, out_path: str, calibration_data: str | None, as_json: bool,
                      **export: object) -> None:  # fmt: skip
    """``export --target``: the deployed file of :mod:`edgeprune.backends.deployable`."""
    from edgeprune.export import deployed_file
    from edgeprune.report import fp32_layers_text
    from edgeprune.validation import calibration_set

    source, images = calibration_set(ref, target, None, calibration_data)
    if target.precision == "int8" and not source:
        raise click.UsageError(f"{target.name} is int8: its model is calibrated on real images; give "
                               "--calibration-data (a data set name, an image folder or a dataset yaml)")  # fmt: skip
    data = deployed_file(target, ref.module, ref.input_chw, out_path, images, **export)
    if data["calibration"]:
        data["calibration"]["data"] = source
    left = fp32_layers_text(data)
    left = f"; left in fp32: {left}" if left else ""
    calibrated = f", calibrated on {len(images)} images of {source}" if images is not None else ""
    emit(as_json, data, f"wrote {', '.join(data['files'])}: what {target.name} runs ({target.backend}, "
                        f"{target.precision}{calibrated}{left})")  # fmt: skip


@click.command("validate", short_help="Measure original vs pruned on a target; gate.")
@click.argument("original")
@click.argument("pruned")
@click.option("--target", "target_name", required=True, metavar="NAME", help="Target to measure on.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Report folder.")
@profile_option_with("Latency profile to predict the speedup from and gate the measured one against (default: none; "
                     "the speedup is measured, not gated).")
@click.option("--data", default=None, metavar="DATA",
              help="Also measure accuracy: cifar10-lossless, an image or .npy folder (top-1 on its val/ samples), or a "
              "detector's dataset yaml (mAP50-95 on its val images, letterboxed to the input size).")
@int8_options
@click.option("--input-size", type=click.IntRange(min=8), default=None, metavar="PX",
              help="Square input side (a sequence model's length) both models are exported, timed and scored at "
              "(default: the size saved with PRUNED, else the registry's).")
@click.option("--tolerance", type=click.FloatRange(0, 1), default=0.15, show_default=True,
              help="With --profile: allowed shortfall of the measured speedup against the predicted one.")
@weights_options
@json_option
@click.pass_context
def validate_cmd(ctx, original, pruned, target_name, out_dir, profile_path, data, calibration_data,
                 calibration_count, int8_layers, input_size, tolerance, pretrained, as_json) -> None:  # fmt: skip
    """Compare ORIGINAL and PRUNED on a target: MACs, predicted and measured latency, memory, accuracy.

    Exit code 3 when the exported model's numerics differ from torch, 4 when the measured speedup falls
    short of the prediction by more than --tolerance (the gate needs --profile).
    """
    if not profile_path:
        forbid(ctx, ("tolerance",), "without --profile (the gate compares against the profile's prediction)")
    if data:  # a detector is scored on a dataset yaml, a classifier on classes: refused before any work
        from edgeprune.cli.detect import detection_route

        detection_route(original, data)
    from edgeprune.latency import Profile
    from edgeprune.report import fp32_layers_text, speedup_interval
    from edgeprune.validation import resolve_pair, validate

    target = int8_target(ctx, target_name, calibration_count, int8_layers)
    profile = Profile.load(profile_path) if profile_path else None
    pair = resolve_pair(original, pruned, pretrained, input_size)
    report = validate(*pair, target, out_dir, profile, data, tolerance, calibration_data=calibration_data)
    d = report["derived"]

    def text() -> str:
        predicted = f"{d['predicted_speedup']:.2f}x" if d["predicted_speedup"] else "n/a (no --profile)"
        return (f"MACs {d['macs_speedup']:.2f}x, predicted {predicted}, measured {d['measured_speedup']:.2f}x"
                f"{speedup_interval(d)}, "
                f"realization {d['realization']:.2f}; report in {out_dir}/report.md\n" + quantized()
                + "".join(f"WARNING: {w}\n" for w in report["warnings"])
                + ("PASS: " if report["gate"]["passed"] else "FAIL: ") + report["gate"]["reason"])  # fmt: skip

    def quantized() -> str:
        if "speedup_over_fp32" not in d:
            return ""
        line = "".join(f"left in fp32 ({name}): {fp32_layers_text(report[name])}\n"
                       for name in ("original", "pruned") if fp32_layers_text(report[name]))  # fmt: skip
        if report.get("deployed_files"):
            line += f"the pruned model as deployed: {report['deployed_files'][-1]}\n"
        line += f"{target.precision}: pruned {d['speedup_over_fp32']:.2f}x faster than the dense fp32 model"
        if "quantization_delta_points" in d:
            metric = report["original"].get("accuracy_metric") or "accuracy"
            line += (f"; {metric} {d['accuracy_delta_points']:+.2f} points from pruning, "
                     f"{d['quantization_delta_points']:+.2f} from quantizing")  # fmt: skip
        return line + "\n"

    emit(as_json, report, text)
    if not report["gate"]["passed"]:
        ctx.exit(4)


@click.command("report", short_help="Rebuild reports and charts of a run folder.")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report_cmd(run_dir) -> None:
    """Rebuild report.md and the charts from the report.json files under RUN_DIR."""
    from edgeprune.report import rebuild

    for w in rebuild(run_dir):
        click.echo(f"wrote {w}")
