"""The whole job: regularized training → plan → shrink → fine-tune → export → validate, resumable by stage.

Every stage writes one folder in the run directory, renamed into place only when the stage finished
(training writes its own resumable checkpoint and marks the end with ``run.json``). Re-running the same
command skips every stage whose folder is there and continues at the first one that is not.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from edgeprune.atomic import atomic_dir, atomic_write_text
from edgeprune.errors import EdgepruneError
from edgeprune.models import get_entry
from edgeprune.plan.run import PruneSettings, prune_run
from edgeprune.prune.serialize import registry_name
from edgeprune.train.calibration import calibration_loader
from edgeprune.train.data import is_folder
from edgeprune.train.trainer import CHECKPOINT, TrainConfig

CONFIG_FILE, SUMMARY_FILE = "compress.json", "summary.json"
STAGES = ("train", "prune", "finetune", "export", "validate")


class CompressError(EdgepruneError, RuntimeError):
    """A run folder that holds another configuration, or a stage that cannot go on."""


class Interrupted(EdgepruneError, RuntimeError):
    """Training was interrupted (SIGINT); its checkpoint is saved and a re-run resumes it."""

    exit_code = 130


@dataclass(frozen=True)
class CompressConfig:
    """Everything `edgeprune compress` needs; saved in the run folder so a resume uses the same."""

    model: str
    target: str
    prune: PruneSettings
    pretrained: bool | str = False  # True, or a weights file for the registry model
    data: str = "cifar10"
    data_dir: str | None = None
    reg: str = "oicsr"
    reg_kwargs: dict = field(default_factory=lambda: {"lam": 1e-4})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, lr=0.01))  # 0 epochs: skipped
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2, lr=0.01))  # after pruning
    steps: int = 1  # pruning steps; between two steps the model is fine-tuned for step_epochs
    step_epochs: int = 1
    profile_path: str | None = None
    tolerance: float = 0.15
    distill: str = "off"  # fine-tune from the unpruned model: "off", "labels" (KL + cross-entropy) or "label-free"
    input_size: int | None = None  # an image folder's square side (default: the model's)
    workers: int | None = None  # image-folder decoding processes
    # calibrated pruning (plan/run.py): importance measured on this many train images of this data set, and
    # removed channels' means folded into the next layers; None: the regularizer's importance, channels dropped
    calibration_data: str | None = None
    calibration_count: int | None = None
    freeze_unknown: bool = False  # the channel graph's, in training and pruning (edgeprune.graph.build_graph)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["prune"]["budget"] = str(self.prune.budget)
        for key in ("measured_rounds", "compare_plans"):
            if d["prune"][key] is None:
                del d["prune"][key]  # the default (timed on the profile's own device) is left to the code
        if d["prune"]["constraints"]["width_power"] == 0:
            del d["prune"]["constraints"]["width_power"]  # the default, as runs saved before it existed read
        for key, unset in (("distill", "off"), ("input_size", None), ("workers", None), ("calibration_data", None),
                           ("calibration_count", None), ("freeze_unknown", False)):  # fmt: skip
            if d[key] == unset:
                del d[key]  # likewise
        return d

    def teacher(self, unpruned: str):
        """The fine-tunes' distillation from ``unpruned`` (the model the plan was made from), or None."""
        from edgeprune.train.distill import DistillConfig

        return None if self.distill == "off" else DistillConfig(unpruned, labels=self.distill == "labels")


def _train(ref: str, out: Path, cfg: CompressConfig, reg: str, reg_kwargs: dict, train_cfg: TrainConfig,
           pretrained: bool | str, progress: bool, distill=None) -> None:  # fmt: skip
    from edgeprune.train.run import RUN_FILE, train_run

    if (out / RUN_FILE).is_file():
        return
    result = train_run(ref, out, cfg.data, reg, reg_kwargs, train_cfg, pretrained, (out / CHECKPOINT).is_file(),
                       cfg.data_dir, progress, distill, cfg.input_size, cfg.workers, cfg.freeze_unknown)  # fmt: skip
    if result["status"] != "done":
        raise Interrupted(f"training in {out} was interrupted; its checkpoint is saved: re-run to resume")


def _prune(source: str, run: Path, cfg: CompressConfig, progress: bool) -> Path:
    """Pruning steps (each but the last followed by a short fine-tune); returns the last step's folder."""
    origin, unpruned = None, source
    for step in range(1, cfg.steps + 1):
        folder = run / "prune" / f"step{step}"
        if not (folder / "plan_result.json").is_file():
            pretrained = cfg.pretrained if source == cfg.model else False  # only a registry name takes weights
            calibration = calibration_loader(cfg.calibration_data, cfg.calibration_count)
            prune_run(source, cfg.target, cfg.prune, folder, cfg.profile_path, pretrained, (step, cfg.steps, origin),
                      cfg.freeze_unknown, cfg.input_size, calibration)  # fmt: skip
        origin = json.loads((folder / "plan_result.json").read_text())["origin"]
        source = str(folder)
        if step < cfg.steps:
            tuned = run / "prune" / f"step{step}-finetune"
            step_cfg = TrainConfig(**{**asdict(cfg.finetune), "epochs": cfg.step_epochs})
            _train(source, tuned, cfg, "none", {}, step_cfg, False, progress, cfg.teacher(unpruned))
            source = str(tuned)
    return run / "prune" / f"step{cfg.steps}"


def _export(model_dir: Path, out: Path) -> None:
    from edgeprune.export import check_onnx, export_onnx
    from edgeprune.validation import resolve_model

    if out.is_dir():
        return
    ref = resolve_model(str(model_dir))
    model, chw = ref.module, ref.input_chw
    with atomic_dir(out) as tmp:
        result = export_onnx(model, torch.randn(1, *chw), tmp / "model.onnx")
        err = check_onnx(model, tmp / "model.onnx", torch.randn(3, *chw))
        record = {"exporter": result.exporter, "opset": result.opset, "notes": result.notes, "max_rel_error": err}
        (tmp / "export.json").write_text(json.dumps(record, indent=1))


def _accuracy_data(cfg: CompressConfig) -> str | None:
    """What validation measures accuracy on: the lossless CIFAR-10 test images for a CIFAR model trained on
    CIFAR-10, a folder's val images, else nothing (synthetic data)."""
    if cfg.data.startswith("cifar10") and get_entry(registry_name(cfg.model)).family == "cifar":
        return "cifar10-lossless"
    return cfg.data if is_folder(cfg.data) else None


def _validate(cfg: CompressConfig, original: str, pruned_dir: Path, out: Path, planned: dict | None) -> dict:
    from edgeprune.latency import collect_layers
    from edgeprune.latency.target_profile import load_for_target
    from edgeprune.targets import load_target
    from edgeprune.validation import resolve_pair, validate

    if not out.is_dir():
        target = load_target(cfg.target)
        profile = load_for_target(target, cfg.profile_path)
        accuracy_data = _accuracy_data(cfg)
        pair = resolve_pair(original, str(pruned_dir), cfg.pretrained if original == cfg.model else False)
        planned_by_latency = "latency" in (cfg.prune.budget.kind, cfg.prune.ranked_by)
        # a plan made without the profile is still predicted by it, where it holds the model's layers; else
        # validated on measurements alone (the report says: not gated)
        layers = None if planned_by_latency else collect_layers(pair[0].module, target.input_shape(pair[0].input_chw))
        if layers is not None and profile.missing(layers):
            profile = None
        # a plan timed while it was planned is gated against that measurement, not the prediction
        with atomic_dir(out) as tmp:
            validate(*pair, target, tmp, profile, accuracy_data,
                     cfg.tolerance, 1 / planned["measured"] if planned else None,
                     calibration_data=cfg.data if target.precision == "int8" else None)  # fmt: skip
    return json.loads((out / "report.json").read_text())


def compress(cfg: CompressConfig, out_dir: str | os.PathLike, progress: bool = True) -> dict:
    """Run (or resume) every stage in ``out_dir``; returns the summary also written to ``summary.json``."""
    run = Path(out_dir)
    if cfg.prune.measured_rounds or cfg.prune.compare_plans:  # refused before anything is written, not after training
        from edgeprune.plan.run import check_timing
        from edgeprune.targets import load_target

        check_timing(cfg.prune, load_target(cfg.target))
    if is_folder(cfg.data) and cfg.train.epochs == 0:
        raise CompressError(f"--data {cfg.data} is an image folder: the training stage sizes the model's head to its "
                            "classes, so --reg-epochs must be at least 1 (--reg none only fits the model)")  # fmt: skip
    config = json.loads(json.dumps(cfg.to_dict()))  # as it reads back from the file (tuples become lists)
    if (run / CONFIG_FILE).is_file():
        saved = json.loads((run / CONFIG_FILE).read_text())
        if saved != config:
            changed = sorted(k for k in config if saved.get(k) != config[k])
            raise CompressError(f"{run} holds a compress run with other settings ({', '.join(changed)}): "
                                "re-run with the same options to resume, or choose another --out")  # fmt: skip
    elif run.exists() and any(run.iterdir()):
        raise CompressError(f"{run} is not empty and holds no compress run: choose another --out")
    else:
        atomic_write_text(run / CONFIG_FILE, json.dumps(config, indent=1))
    source = cfg.model
    if cfg.train.epochs > 0:
        # regularize what the plan may cut: streams kept whole are left out of the penalty (unless set)
        reg_kwargs = {"streams": cfg.prune.constraints.max_removed_shared > 0, **cfg.reg_kwargs}
        _train(cfg.model, run / "train", cfg, cfg.reg, reg_kwargs, cfg.train, cfg.pretrained, progress)
        source = str(run / "train")
    pruned = _prune(source, run, cfg, progress)
    final = pruned
    if cfg.finetune.epochs > 0:
        _train(str(pruned), run / "finetune", cfg, "none", {}, cfg.finetune, False, progress, cfg.teacher(source))
        final = run / "finetune"
    _export(final, run / "export")
    planned = json.loads((pruned / "plan_result.json").read_text()).get("measured")  # the plan as timed, if it was
    # on an image folder the registry model answers other classes: the unpruned model trained on it is the reference
    original = source if is_folder(cfg.data) else cfg.model
    report = _validate(cfg, original, final, run / "validate", planned)
    summary = summarize(cfg, run, report, final, planned)
    atomic_write_text(run / SUMMARY_FILE, json.dumps(summary, indent=1))
    return summary


def summarize(cfg: CompressConfig, run: Path, report: dict, final: Path, planned: dict | None) -> dict:
    """The numbers a user asks for first: accuracy, MACs, predicted and measured latency, where the report is."""
    a, b, d = report["original"], report["pruned"], report["derived"]
    test_acc = None
    if (final / "run.json").is_file():
        test_acc = json.loads((final / "run.json").read_text())["result"].get("test_acc")
    return {
        "model": cfg.model, "target": report["target"], "budget": str(cfg.prune.budget),
        "accuracy": {"original": a.get("accuracy"), "pruned": b.get("accuracy"), "data": _accuracy_data(cfg)},
        "test_accuracy_after_finetune": test_acc,
        "macs": {"original": a["macs"], "pruned": b["macs"], "speedup": d["macs_speedup"]},
        "latency_ms": {"original": a["latency"]["median_ms"], "pruned": b["latency"]["median_ms"],
                       "measured_speedup": d["measured_speedup"], "measured_speedup_ci": d.get("speedup_ci"),
                       "predicted_speedup": d["predicted_speedup"],
                       "speedup_measured_while_planning": 1 / planned["measured"] if planned else None},
        "realization": d["realization"], "gate": report["gate"], "warnings": report.get("warnings", []),
        "report": str(run / "validate" / "report.md"), "onnx": str(run / "export" / "model.onnx"),
    }  # fmt: skip


def format_summary(s: dict) -> str:
    from edgeprune.report import speedup_interval

    interval = speedup_interval({"speedup_ci": s["latency_ms"].get("measured_speedup_ci")})
    acc = s["accuracy"]
    predicted = s["latency_ms"]["predicted_speedup"]
    while_planning = s["latency_ms"].get("speedup_measured_while_planning")
    lines = [
        f"{s['model']} on {s['target']}, budget {s['budget']}:",
        f"  MACs      {s['macs']['original'] / 1e6:.1f}M -> {s['macs']['pruned'] / 1e6:.1f}M "
        f"({s['macs']['speedup']:.2f}x fewer)",
        f"  latency   {s['latency_ms']['original']:.3f} -> {s['latency_ms']['pruned']:.3f} ms: measured "
        f"{s['latency_ms']['measured_speedup']:.2f}x{interval}, "
        + (f"predicted {predicted:.2f}x" if predicted else "not predicted (the profile lacks its layers)")
        + (f", {while_planning:.2f}x when timed while planning" if while_planning else ""),
    ]
    if acc["original"] is not None:
        on = "1,017 lossless CIFAR-10 test images" if acc["data"] == "cifar10-lossless" else f"{acc['data']} val"
        lines.append(f"  accuracy  {100 * acc['original']:.2f} % -> {100 * acc['pruned']:.2f} % ({on})")
    if s["test_accuracy_after_finetune"] is not None:
        lines.append(f"  test accuracy after fine-tuning: {100 * s['test_accuracy_after_finetune']:.2f} %")
    lines += [f"  WARNING: {w}" for w in s.get("warnings", [])]
    lines.append(f"  gate: {'PASS' if s['gate']['passed'] else 'FAIL'}: {s['gate']['reason']}")
    lines.append(f"  report: {s['report']}")
    return "\n".join(lines)
