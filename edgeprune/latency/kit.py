"""Device kits: profile a device that cannot run torch.

``write_kit`` puts the ONNX micro-models, the calibration models and a manifest in a folder;
the collector copied into it (``edgeprune.kit.collect``, with the timing harness ``edgeprune.timing``)
measures them on the device with only onnxruntime (or TensorRT) and numpy;
``import_result`` validates what it wrote and turns it into a :class:`Profile`.

A second, smaller kit (``write_kit(..., planned=(profile, planner))``) holds only the dense models and the
plans the planner makes with the imported profile; its result is imported into that profile
(``import_result(path, into=profile)``), which then calibrates on the planner's own plans as a profile measured
here does (:func:`edgeprune.latency.profiler.calibrate_models`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import onnx
import torch

from edgeprune import timing
from edgeprune.errors import OutputExistsError
from edgeprune.export import export_onnx
from edgeprune.kit import collect
from edgeprune.kit.collect import KIT_SCHEMA, RESULT_SCHEMA
from edgeprune.latency.calibration import dense_reference, run_point
from edgeprune.latency.layers import Geometry, collect_layers
from edgeprune.latency.micro import micro_model
from edgeprune.latency.profile import DEFAULT_SETTINGS, Profile, ProfileError, ProfileSettings, Table
from edgeprune.latency.profiler import (
    build_model,
    choose_lookup_and_calibrate,
    model_input_shape,
    planned_variants_of,
    profile_settings,
    target_dict,
)
from edgeprune.latency.tables import grid_axes
from edgeprune.latency.variants import Planner, calibration_variants
from edgeprune.targets import Target, TargetError, channel_align


def write_kit(target: Target, model_names: list[str], out_dir: str | os.PathLike,
              settings: ProfileSettings = DEFAULT_SETTINGS,
              planned: tuple[Profile, Planner] | None = None) -> Path:  # fmt: skip
    """Write the kit folder (built in a temp folder, then moved into place: never half-written). ``planned``: a
    kit of the plans the planner makes with that profile (imported from a first kit) at the MACs budgets of
    ``settings.calibration_planned``, beside each dense model; no micro-models."""
    if target.backend not in ("onnxruntime", "tensorrt") or target.precision == "int8":
        raise TargetError(f"a device kit times fp32/fp16 ONNX models with onnxruntime or TensorRT; target "
                          f"{target.name} ({target.backend}, {target.precision}) is profiled on its device with "
                          f"`edgeprune profile measure`")  # fmt: skip
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise OutputExistsError(f"{out} exists and is not empty: choose another --out")
    tmp = Path(tempfile.mkdtemp(prefix=".kit-", dir=out.parent if out.parent.exists() else None))
    try:
        entries = []
        (tmp / "micro").mkdir()
        dense = [] if planned else [collect_layers(build_model(n, target), model_input_shape(n, target))
                                    for n in model_names]  # a planned kit has no micro-models  # fmt: skip
        axes = grid_axes([x for ls in dense for x in ls], settings)
        points = [(key, a, Geometry.from_key(key).paired_cout(a) if cout_axis is None else b)
                  for key, (cin_axis, cout_axis) in sorted(axes.items())
                  for a in cin_axis for b in (cout_axis or [None])]  # fmt: skip
        random.Random(0).shuffle(points)  # the collector times in file order: a burst scatters over widths
        for key, cin, cout in points:
            g = Geometry.from_key(key)
            name = f"micro/{len(entries):05d}.onnx"
            onnx.save(micro_model(g, cin, cout), tmp / name)
            entries.append({"key": key, "cin": cin, "cout": cout, "file": name, "input": list(g.input_shape(cin))})
        calibration = _write_calibration_models(target, model_names, tmp, settings, planned)
        manifest = {"schema": KIT_SCHEMA, "target": target_dict(target),
                    # shuffled, but not re-timed: the torch-free collector has no neighbours to compare
                    "settings": {**profile_settings(target, "wall", settings), "sweep": {"order": "shuffled"}},
                    "micro_timing": settings.micro_timing,
                    "entries": entries, "calibration": calibration}  # fmt: skip
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        # the collector and its timing module travel with the kit: the device needs no edgeprune
        shutil.copyfile(collect.__file__, tmp / "collect.py")
        shutil.copyfile(timing.__file__, tmp / collect.TIMING_FILE)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_calibration_models(target: Target, model_names: list[str], folder: Path, settings: ProfileSettings,
                              planned: tuple[Profile, Planner] | None = None) -> list[dict]:  # fmt: skip
    (folder / "models").mkdir()
    out = []
    for name in model_names:
        shape = model_input_shape(name, target)
        if planned:  # the collector times every model beside its dense one, labelled uniform-0.0
            model, variants = planned_variants_of(target, *planned, name, settings)
            variants = [("uniform-0.0", model)] + variants
        else:
            model = build_model(name, target)
            variants = calibration_variants(model, name, shape, settings, channel_align(target))
        for label, variant in variants:
            file = f"models/{name}--{label}.onnx"
            export_onnx(variant, torch.randn(*shape), folder / file)
            layers = [x.row for x in collect_layers(variant, shape)]
            out.append({"model": name, "label": label, "file": file, "input": list(shape), "layers": layers})
    return out


def import_result(path: str | os.PathLike, into: Profile | None = None) -> Profile:
    """Validate a kit result and build the Profile (tables + calibration fitted here); a planned kit's result
    (no micro-models) is added to ``into``, the profile it was planned with."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ProfileError(f"cannot read kit result {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema") != RESULT_SCHEMA:
        raise ProfileError(f"{path}: not a kit result (expected schema {RESULT_SCHEMA!r})")
    if not data.get("measurements") and data.get("calibration"):
        return _import_planned(path, data, into)
    if into is not None:  # a whole profile would replace the one named, tables and all
        raise ProfileError(f"{path} is a first kit's result (layer tables and calibration): import it without "
                           "--profile; --profile takes a kit written with --planned-from")  # fmt: skip
    try:
        tables: dict[str, dict] = {}
        for e in data["measurements"]:
            tables.setdefault(e["key"], {})[(int(e["cin"]), int(e["cout"]))] = (float(e["ms"]), float(e["spread_pct"]))
        profile = Profile(data["target"], data["device"], data["settings"],
                          {k: _table_from_points(k, pts) for k, pts in tables.items()})
        by_model: dict[str, list[dict]] = {}
        for c in data["calibration"]:
            by_model.setdefault(c["model"], []).append(
                {"label": c["label"], "layers": c["layers"], "measured_ms": float(c["measured_ms"]),
                 **{k: float(c[k]) for k in ("measured_ratio", "dense_ms") if k in c}}
            )
        profile = choose_lookup_and_calibrate(profile, by_model)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"{path}: malformed kit result ({type(exc).__name__}: {exc})") from exc
    return profile


def _table_from_points(key: str, points: dict[tuple[int, int], tuple[float, float]]) -> Table:
    cins = sorted({c for c, _ in points})
    g = Geometry.from_key(key)
    if g.op in ("dwconv", "gconv"):
        pairs = [(c, g.paired_cout(c)) for c in cins]
        return Table(cins, None, [points[p][0] for p in pairs], [points[p][1] for p in pairs])
    couts = sorted({c for _, c in points})
    missing = [(a, b) for a in cins for b in couts if (a, b) not in points]
    if missing:
        raise ProfileError(f"kit result lacks {len(missing)} grid points of {key}, e.g. {missing[0]}")
    return Table(cins, couts, [[points[(a, b)][0] for b in couts] for a in cins],
                 [[points[(a, b)][1] for b in couts] for a in cins])


def _import_planned(path, data: dict, into: Profile | None) -> Profile:
    """``into`` with a planned kit's runs added to each model's calibration points and everything refitted."""
    if into is None:
        raise ProfileError(f"{path} holds runs of planned plans only: import it into the profile they were planned "
                           "with (--profile)")  # fmt: skip
    if data.get("target", {}).get("name") != into.target.get("name"):
        raise ProfileError(f"{path} was measured for target {data.get('target', {}).get('name')!r}, the profile is "
                           f"for {into.target.get('name')!r}")  # fmt: skip
    mismatch = into.device_mismatch(data.get("device", {}), "kit")
    if mismatch:
        raise ProfileError(f"{path} ran on another device than the profile's tables ({mismatch})")
    points = {name: list(cal.points) for name, cal in into.calibration.items()}
    # each model's runs are stated on the dense ms of its earlier runs (the kit's own dense run is only the pair's
    # reference on the device), taken before any of this kit's runs join them
    reference = {name: dense_reference(pts) for name, pts in points.items()}
    try:
        for c in data["calibration"]:
            name, label = c["model"], c["label"]
            if name not in points:
                raise ProfileError(f"{path}: {name} has no calibration in the profile to add planned runs to")
            if label == "uniform-0.0":
                continue
            run = run_point(label, c["layers"], float(c["measured_ratio"]), float(c["dense_ms"]), reference[name])
            points[name] = [p for p in points[name] if p.get("label") != label] + [run]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"{path}: malformed kit result ({type(exc).__name__}: {exc})") from exc
    return choose_lookup_and_calibrate(into, points)
