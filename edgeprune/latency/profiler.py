"""Measure a latency profile on a target: per-layer grids and end-to-end calibration (its check: check.py)."""

from __future__ import annotations

import itertools
import json
import math
import statistics
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from edgeprune.atomic import atomic_write_text
from edgeprune.backends import get_backend
from edgeprune.errors import EdgepruneError
from edgeprune.latency.calibration import (
    PLANNED,
    dense_reference,
    fit_calibration,
    fit_line,
    is_planned,
    point_features,
    run_point,
)
from edgeprune.latency.layers import Layer, collect_layers
from edgeprune.latency.model import LatencyModel, activation_mb, misaligned
from edgeprune.latency.profile import (
    DEFAULT_SETTINGS,
    Profile,
    ProfileError,
    ProfileSettings,
    Table,
    calibration_name,
    device_fingerprint,
)
from edgeprune.latency.runs import export_for, measure_model, measure_variants, prepare_model  # noqa: F401
from edgeprune.latency.sweep import settle_runs
from edgeprune.latency.tables import grid_axes, layer_timing, measure_table
from edgeprune.latency.variants import CALIBRATION_SEED, Planner, calibration_variants, planned_variants
from edgeprune.models import create_model_for_size, get_entry
from edgeprune.models.registry import resized
from edgeprune.targets import Target, channel_align

LOOKUP_CHOICES = [(block, scan) for block in (1, 8, 16) for scan in (True, False)]
MISALIGN_BLOCKS = (8, 16)
MISALIGN_PER_MB = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)  # ms per MB of activations around a misaligned layer
MISALIGN_PER_LAYER = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05)  # ms per misaligned layer


class ProfileBudgetExceeded(EdgepruneError, RuntimeError):
    """Profiling ran out of its time budget; the partial work is kept for a resumed run."""


def model_input_shape(name: str, target: Target, side: int | None = None) -> tuple[int, ...]:
    """The target's input shape for ``name``: at its registry size, or square ``side`` (a sequence's length) when
    given."""
    return target.input_shape(resized(get_entry(name).input_size, side))


def build_model(name: str, target: Target, side: int | None = None) -> nn.Module:
    return create_model_for_size(name, model_input_shape(name, target, side)[-1]).eval()


def choose_lookup_and_calibrate(profile: Profile, points_by_model: dict[str, list[dict]],
                                choices: list[tuple[int, bool]] = LOOKUP_CHOICES) -> Profile:  # fmt: skip
    """Pick the lookup variant (channel block, staircase scans: one of ``choices``) and the misalignment term
    that best explain the calibration runs (least RMS relative residual), then fit each model's calibration
    line with them. Each point carries its layers as [key, cin, cout]. Returns a copy of ``profile`` with
    them; the calibration lines of models without points are dropped.

    The misalignment term is what a layer off the runtime's channel blocking costs inside a network beyond
    its micro-model (onnxruntime leaves its blocked layout around such a layer: two layout reorders of its
    activations): ms_per_mb of its input and output activations plus ms_per_layer, for a blocking of 8 or
    16. Each model takes the variant and term that explain its own runs (``Profile.lookups``), so adding a
    model to a profile leaves the others' predictions as they were; the variant that explains all runs
    together is the default for models the profile was not calibrated on.
    """
    layers = {(name, i): profile.model_layers(name, p) for name, points in points_by_model.items()
              for i, p in enumerate(points)}  # fmt: skip
    features = {}  # per point and blocking: (MB moved, number of layers) of its misaligned layers
    for pid, ls in layers.items():
        for align in MISALIGN_BLOCKS:
            off = [x for x in ls if misaligned(x.geometry, x.cin, x.cout, align)]
            features[pid, align] = (sum(activation_mb(x.geometry, x.cin, x.cout) for x in off), len(off))
    extra = {pid: point_features(ls) for pid, ls in layers.items()}  # the calibration forms' other terms
    planned = {name: [is_planned(p) for p in points] for name, points in points_by_model.items()}
    # per model, and (key None) over all models' runs together: (RMS residual, lookup, its scored points)
    best: dict[str | None, tuple] = {}
    for block, scan in choices:
        trial = replace(profile, channel_block=block, use_scan=scan, misalign={}, lookups={})
        models = {name: LatencyModel(trial, name) for name in points_by_model}
        base = {pid: models[pid[0]].layers_ms(ls) for pid, ls in layers.items()}
        for align, per_mb, per_layer in itertools.product(MISALIGN_BLOCKS, MISALIGN_PER_MB, MISALIGN_PER_LAYER):
            term = {"align": align, "ms_per_mb": per_mb, "ms_per_layer": per_layer} if per_mb or per_layer else {}
            lookup = {"channel_block": block, "use_scan": scan, "misalign": term}
            squares, scored = {}, {}
            for name, points in points_by_model.items():
                pts = []
                for i, p in enumerate(points):
                    mb, n = features[(name, i), align]
                    pts.append({**p, "layers_ms": base[name, i] + per_mb * mb + per_layer * n, **extra[name, i]})
                chooses = [q for q, own in zip(pts, planned[name]) if not own]
                cal, scored[name] = fit_line(chooses), pts
                squares[name] = [((cal.scale * q["layers_ms"] + cal.offset_ms) / q["measured_ms"] - 1) ** 2
                                 for q in chooses]  # fmt: skip
            for key, names in [*((n, [n]) for n in points_by_model), (None, list(points_by_model))]:
                # RMS, not the median: a median lets a term explain the random plans and leave up to half of
                # the points (all the uniform ones) unexplained, and the term is then a different one each time
                sq = [r for n in names for r in squares[n]]
                score = math.sqrt(statistics.fmean(sq)) if sq else 0.0
                if key not in best or score < best[key][0] - 1e-12:
                    best[key] = (score, lookup, scored.get(key))
    joint = best[None][1]
    lookups = {name: best[name][1] for name in points_by_model}
    # the lookup is chosen on the plain line, without the planner's own plans: they were planned with a lookup, so
    # they would vote for it (on MobileNet-V2 the random plans' median error went from 2.3 % to 9.0 % when they
    # did). Each model's calibration then takes the terms that predict best, on all its points
    calibration = {name: fit_calibration(best[name][2]) for name in points_by_model}
    return replace(profile, channel_block=joint["channel_block"], use_scan=joint["use_scan"],
                   misalign=joint["misalign"], lookups=lookups, calibration=calibration)  # fmt: skip


def profile_target(
    target: Target,
    model_names: list[str],
    out_path: Path,
    budget_s: float | None = None,
    progress: bool = True,
    timing: str = "wall",
    settings: ProfileSettings = DEFAULT_SETTINGS,
    side: int | None = None,
    planner: Planner | None = None,
) -> Profile:
    """Measure every layer geometry of ``model_names`` on ``target``, calibrate, write ``out_path``.

    ``timing``: how layers are timed, "wall" or "kernel" (see :func:`layer_timing`); ``settings``: the grid,
    scans, micro-model timing and calibration plans; ``side``: a square input side other than the models'
    registry sizes (their calibration lines are then keyed ``name@side``, see :func:`calibration_name`);
    ``planner``: also calibrate on the plans it makes (:func:`calibrate_models`).

    Resumable: finished tables are kept in ``<out>.partial.json`` and reused by the next run. The final
    file is written atomically, only after everything succeeded. Additive: a finished profile at ``out_path``
    whose tables were measured the same way keeps its tables (one that lacks widths the new models need is
    measured again over both grids), the models (and input sizes) not measured now as they were
    (calibration line and lookup), and its in-network fits; the default lookup, for models without a line,
    is refitted on all lines.
    """
    reason = get_backend(target.backend).unavailable_reason(target)
    if reason:
        raise ProfileError(f"target {target.name} cannot run here: {reason}")
    start = time.monotonic()
    partial = out_path.with_suffix(".partial.json")
    timing = layer_timing(target, timing)
    stamp = {"target": target_dict(target), "settings": profile_settings(target, timing, settings)}
    done: dict = {**stamp, "tables": {}}
    for source in (partial, out_path):  # resume a run, or recalibrate a finished profile's tables
        if source.exists():
            try:
                previous = json.loads(source.read_text())
            except json.JSONDecodeError:
                continue
            if _table_stamp(previous) == _table_stamp(stamp):  # only tables measured the same way
                done = {**stamp, "tables": previous["tables"]}
                break
    earlier = _earlier_profile(out_path, stamp)
    layers = {name: collect_layers(build_model(name, target, side), model_input_shape(name, target, side))
              for name in model_names}  # fmt: skip
    axes = grid_axes([layer for ls in layers.values() for layer in ls], settings)
    # a table measured for another model's widths that misses some of these is measured again over both grids
    axes = {k: _merged_axes(done["tables"].get(k), a) for k, a in axes.items()}
    todo = [k for k in sorted(axes) if k not in done["tables"] or _grid(done["tables"][k]) != axes[k]]
    with tempfile.TemporaryDirectory() as tmp:
        for key in tqdm(todo, desc=f"profiling {target.name}", disable=not progress):
            if budget_s is not None and time.monotonic() - start > budget_s:
                raise ProfileBudgetExceeded(f"time budget of {budget_s:.0f} s used; rerun to resume from {partial}")
            done["tables"][key] = vars(measure_table(target, key, *axes[key], Path(tmp), timing, settings))
            atomic_write_text(partial, json.dumps(done))
        # every table measured this way is kept, also a resumed run's tables of models not measured now: they
        # would be measured again otherwise (the partial file goes once the profile is written)
        tables = {k: Table(**t) for k, t in done["tables"].items()}
        profile = Profile(target_dict(target), device_fingerprint(target.backend), stamp["settings"], tables)
        points = {name: c.points for name, c in earlier.calibration.items()} if earlier else {}
        profile = calibrate_models(profile, target, model_names, points, settings, side, planner)
        if earlier:
            profile = _keep_earlier_models(profile, earlier, {calibration_name(n, side) for n in model_names})
    profile.save(out_path)
    partial.unlink(missing_ok=True)
    return profile


def _grid(table: dict) -> tuple[list[int], list[int] | None]:
    return table["cin"], table["cout"]


def _merged_axes(stored: dict | None, axes: tuple[list[int], list[int] | None]) -> tuple[list[int], list[int] | None]:
    """``axes``, united with a stored table's grid (that grid itself when it holds them all)."""
    if stored is None:
        return axes
    cin, cout = _grid(stored)
    return sorted({*cin, *axes[0]}), None if axes[1] is None else sorted({*(cout or []), *axes[1]})


def _keep_earlier_models(profile: Profile, earlier: Profile, measured: set[str]) -> Profile:
    """``profile`` with the models ``earlier`` was calibrated on and not ``measured`` now as they were there
    (calibration line, lookup), and ``earlier``'s in-network fits. Their tables are unchanged unless a new
    model needed one over more widths (then it was measured again over both grids)."""
    kept = set(earlier.calibration) - measured
    lookups = {name: dict(zip(("channel_block", "use_scan", "misalign"), earlier.lookup_for(name))) for name in kept}
    return replace(profile, calibration={**profile.calibration, **{n: earlier.calibration[n] for n in kept}},
                   lookups={**profile.lookups, **lookups}, width_scale=earlier.width_scale,
                   removal_scale=earlier.removal_scale)  # fmt: skip


def _earlier_profile(path: Path, stamp: dict) -> Profile | None:
    """The finished profile at ``path`` when its tables were measured as ``stamp`` says (a run adds to it)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return Profile.from_dict(data, str(path)) if _table_stamp(data) == _table_stamp(stamp) else None


def measured_layers(profile: Profile, target: Target, name: str) -> list[Layer]:
    """``name``'s layers at its registry input size; :class:`ProfileError` naming the command that measures them
    where the profile lacks a table for some."""
    layers = collect_layers(build_model(name, target), model_input_shape(name, target))
    missing = profile.missing(layers)
    if missing:
        raise ProfileError(f"{name} has {len(missing)} layer geometries the profile never measured (e.g. "
                           f"{missing[0]}): profile it with `edgeprune profile measure {target.name} "
                           f"--model {name}`")  # fmt: skip
    return layers


def recalibrate_profile(profile: Profile, target: Target, model_names: list[str],
                        settings: ProfileSettings = DEFAULT_SETTINGS,
                        planner: Planner | None = None) -> Profile:  # fmt: skip
    """A copy of ``profile`` with the calibration runs of ``model_names`` measured again and the lookup variant,
    the misalignment term and every model's calibration line refitted; the layer tables are kept, and models
    not named keep their stored points. Minutes instead of a full profile, when the tables still hold but the
    end-to-end picture moved (a runtime update, a new timing layout). ``planner``: as :func:`calibrate_models`."""
    reason = get_backend(target.backend).unavailable_reason(target)
    if reason:
        raise ProfileError(f"target {target.name} cannot run here: {reason}")
    run, _ = _table_stamp({"target": target_dict(target)})
    if run != _table_stamp(profile.to_dict())[0]:
        raise ProfileError(f"the profile's tables were measured with another {target.name} set-up "
                           f"({profile.target}): profile again instead of recalibrating")  # fmt: skip
    for name in model_names:
        measured_layers(profile, target, name)
    points = {name: cal.points for name, cal in profile.calibration.items()}
    fitted = calibrate_models(profile, target, model_names, points, settings, planner=planner)
    fresh = profile_settings(target, profile.settings.get("layer_timing", "wall"), settings)
    return replace(fitted, settings={**profile.settings, **{k: fresh[k] for k in ("calibration", "end_to_end")}})


def calibration_points(target: Target, name: str, settings: ProfileSettings = DEFAULT_SETTINGS,
                       side: int | None = None) -> list[dict]:  # fmt: skip
    """End-to-end runs of uniform and random pruned variants (the dense model among them), each with its
    layer list.

    Each variant is timed beside a fresh session of the dense model in alternating rounds, and its ms is
    its ratio to that session times the median dense ms of all pairs: the machine's drift over the minutes
    a calibration takes (20 % and more on a shared VM) cancels out of the points instead of bending the line.
    """
    model, shape = build_model(name, target, side), model_input_shape(name, target, side)
    return _timed_points(target, model, calibration_variants(model, name, shape, settings, channel_align(target)),
                         shape, f"calibrating {name}", settings=settings)  # fmt: skip


def planned_points(target: Target, profile: Profile, name: str, planner: Planner, reference: float,
                   settings: ProfileSettings = DEFAULT_SETTINGS, side: int | None = None) -> list[dict]:  # fmt: skip
    """End-to-end runs of the plans ``planner`` makes with ``profile`` at each MACs budget of
    ``settings.calibration_planned``, as :func:`calibration_points` (``reference``: their dense median ms).

    The plan a planner picks is the one its prices flatter most, so the points it is fitted on must include
    such plans. A budget the planner cannot reach is left out with a warning."""
    model, variants = planned_variants_of(target, profile, planner, name, settings, side)
    shape = model_input_shape(name, target, side)
    return _timed_points(target, model, variants, shape, f"calibrating {name} (planned)", reference, settings)


def planned_variants_of(target: Target, profile: Profile, planner: Planner, name: str,
                        settings: ProfileSettings = DEFAULT_SETTINGS, side: int | None = None
                        ) -> tuple[nn.Module, list[tuple[str, nn.Module]]]:  # fmt: skip
    """The dense model (seeded weights) and the plans ``planner`` makes of it with ``profile`` at each MACs
    budget of ``settings.calibration_planned``, labelled ``planned-B``; a budget it cannot reach is left out
    with a warning."""
    with torch.random.fork_rng():  # seeded weights: the importance ranking, and so the plans, repeat
        torch.manual_seed(CALIBRATION_SEED)
        model = build_model(name, target, side)
    shape = model_input_shape(name, target, side)
    layers, variants = collect_layers(model, shape), []
    for fraction in settings.calibration_planned:
        try:
            made = planned_variants(model, name, shape, layers, planner(profile, [f"{fraction:g}x"]))
        except EdgepruneError as e:
            warnings.warn(f"{name}: no planned calibration run at {fraction:g}x MACs: {e}", stacklevel=3)
            continue
        variants += [(f"{PLANNED}{fraction:g}x", m) for _, m in made]
    return model, variants


def _timed_points(target: Target, model: nn.Module, variants: list[tuple[str, nn.Module]], shape: tuple[int, ...],
                  desc: str, reference: float | None = None, settings: ProfileSettings = DEFAULT_SETTINGS
                  ) -> list[dict]:  # fmt: skip
    """Calibration points of ``variants``, each timed beside ``model``; ms = ratio x ``reference`` (default: the
    median of the dense timings).

    As a table's widths (latency/sweep.py), each run is timed in ``settings.sweep`` passes, each pass in fresh
    sessions, and once more where the passes' ratios are further apart than its tolerance; a point keeps the
    median: one session can run a whole program 20-30 % slow (ExecuTorch: docs/benchmarks/targets.md), and one
    such point moves the line."""
    if not variants:
        return []
    runs = settle_runs(lambda models, passes: measure_variants(target, models, shape, passes, desc=desc),
                       [model] + [v for _, v in variants], settings.sweep["passes"], settings.sweep["tolerance"])
    ratios = [[ms / d for d, ms in pairs] for pairs in runs]
    reference = reference or statistics.median(d for pairs in runs for d, _ in pairs)
    return [{**run_point(label, [x.row for x in collect_layers(v, shape)], statistics.median(r),
                         statistics.median(d for d, _ in pairs), reference), "ratios": r}
            for (label, v), pairs, r in zip(variants, runs, ratios)]  # fmt: skip


def calibrate_models(profile: Profile, target: Target, model_names: list[str], points: dict[str, list[dict]],
                     settings: ProfileSettings = DEFAULT_SETTINGS, side: int | None = None,
                     planner: Planner | None = None) -> Profile:  # fmt: skip
    """``profile`` calibrated on ``points`` (other models' stored runs) and fresh runs of ``model_names``: their
    calibration variants first; then, with a ``planner``, the plans it makes with the profile fitted so far,
    and everything fitted again."""
    fresh = {calibration_name(n, side): calibration_points(target, n, settings, side) for n in model_names}
    profile = choose_lookup_and_calibrate(profile, {**points, **fresh})
    if planner is None or not settings.calibration_planned:
        return profile
    for n in model_names:
        line = fresh[calibration_name(n, side)]
        line += planned_points(target, profile, n, planner, dense_reference(line), settings, side)
    return choose_lookup_and_calibrate(profile, {**points, **fresh})


def _table_stamp(record: dict) -> tuple:
    """What decides whether a stored layer table can be reused: how the layers were run and timed."""
    t, st = record.get("target", {}), record.get("settings", {})
    run = tuple(t.get(k) for k in ("backend", "device", "precision", "threads", "providers"))
    how = tuple(st.get(k) for k in ("grid_fractions", "micro_timing", "scan", "sweep", "fusion"))
    return run, how + (st.get("layer_timing", "wall"),)  # profiles from before the option were wall-timed


def target_dict(target: Target) -> dict:
    d = {k: v for k, v in vars(target).items() if k != "source"}
    d["input"] = list(d["input"]) if isinstance(d["input"], tuple) else d["input"]
    d["providers"] = list(d["providers"])
    return d


def profile_settings(target: Target, timing: str = "wall", settings: ProfileSettings = DEFAULT_SETTINGS) -> dict:
    """What the profile file records of how it was made (``_table_stamp`` reads the part tables depend on)."""
    return {
        "grid_fractions": list(settings.grid_fractions),
        "micro_timing": dict(settings.micro_timing),
        "scan": dict(settings.scan),
        "sweep": {"order": "shuffled", **settings.sweep},
        "calibration": {"uniform": list(settings.calibration_ratios), "random": settings.calibration_random,
                        "blocked": settings.calibration_blocked, "planned": list(settings.calibration_planned)},
        "end_to_end": {"warmup": target.warmup, "repeats": target.repeats, "rounds": target.rounds,
                       "how": "each variant beside a dense session, alternating rounds, in the sweep's passes "
                               "(fresh sessions) and once more where they disagree; ms = median ratio x dense median"},
        "statistic": "median of round medians (ms)",
        "fusion": "conv+ReLU micro-models (BN folded)",
        "layer_timing": layer_timing(target, timing),
    }
