"""Fitting a model's calibration from its end-to-end runs: which terms, and their weights.

A point is one pruned variant run end to end: its measured ms, the sum of its layers' table ms
(``layers_ms``), the MB of activations its layers read and write (``act_mb``) and their multiply-accumulates
(``mmacs``). Four forms compete:

    tables        measured ≈ scale * layers_ms + offset
    tables + MB   measured ≈ scale * layers_ms + ms_per_mb * act_mb + offset
    MB alone      measured ≈ ms_per_mb * act_mb + offset
    tables + MACs measured ≈ scale * layers_ms + ms_per_mmac * mmacs + offset

and the one with the least leave-one-out error is kept, so a term is added only where it predicts runs it was
not fitted on. Where a one-layer micro-model's time is mostly the call around the layer, the tables barely
move with the channels while the network's time does, with the data it moves or the arithmetic it does
(ExecuTorch, OpenVINO here: docs/benchmarks/targets.md). The planner's own plans (points labelled
``planned-*``) take no part in choosing the form or the ratio of its terms, which rank one cut against
another; in the line that prices a plan they weigh as much together as all the other points together
(:func:`point_weights`). So they change what a plan is predicted at, not which plan is made.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from edgeprune.latency.layers import Layer, layer_mmacs
from edgeprune.latency.model import LatencyModel, activation_mb, calibration_terms_ms
from edgeprune.latency.profile import Calibration, Profile

MIN_POINTS_PER_TERM = 2  # a form is tried with at least this many points per coefficient, plus one to leave out
# each form's features, the tables' first where it has them; the Calibration field a feature's weight goes to
FORMS = {"tables": ("layers_ms",), "tables+mb": ("layers_ms", "act_mb"), "mb": ("act_mb",),
         "tables+macs": ("layers_ms", "mmacs")}  # fmt: skip
WEIGHT_FIELD = {"act_mb": "ms_per_mb", "mmacs": "ms_per_mmac"}
GAIN_NEEDED = 0.9  # another form is kept only where its leave-one-out error is under this part of the line's
PLANNED = "planned-"  # label prefix of the calibration runs of the planner's own plans


def is_planned(point: dict) -> bool:
    """Whether a calibration point is a run of the planner's own plan."""
    return str(point.get("label", "")).startswith(PLANNED)


def run_point(label: str, layers: list, ratio: float, dense_ms: float, reference: float) -> dict:
    """A calibration point: a run's paired ratio to the dense session timed beside it (``dense_ms``), stated in
    ms as that ratio times the model's ``reference`` dense ms, so drift between runs cancels out."""
    return {"label": label, "layers": layers, "measured_ms": reference * ratio, "measured_ratio": ratio,
            "dense_ms": dense_ms}  # fmt: skip


def dense_reference(points: list[dict]) -> float:
    """The dense ms a model's runs are stated on: the median of the dense sessions timed beside its runs, the
    planner's own left out (they may come later, from another session); points from before the pairing: the
    dense run's own ms."""
    dense = [p["dense_ms"] for p in points if "dense_ms" in p and not is_planned(p)]
    return float(np.median(dense)) if dense else points[0]["measured_ms"]


def point_weights(points: list[dict]) -> np.ndarray:
    """Least-squares weight of each point: the planner's own plans (``planned-*``) together weigh as much as the
    others together. Those are the plans a profile prices in use, and the ones its tables flatter most: fitted
    as one point among many, the line still overrated them (docs/benchmarks/latency-vs-flops.md)."""
    planned = np.array([is_planned(p) for p in points])
    k = int(planned.sum())
    return np.where(planned, (len(points) - k) / k, 1.0) if 0 < k < len(points) else np.ones(len(points))


def activations_mb(layers: list[Layer]) -> float:
    """MB of activations the layers read and write, at their own widths (the MB term's feature)."""
    return sum(activation_mb(x.geometry, x.cin, x.cout) for x in layers)


def model_mmacs(layers: list[Layer]) -> float:
    """Millions of multiply-accumulates of the layers at their own widths (the MACs term's feature)."""
    return sum(layer_mmacs(x, x.cin, x.cout) for x in layers)


def point_features(layers: list[Layer]) -> dict:
    """A point's features besides its tables' ms, from its layers."""
    return {"act_mb": activations_mb(layers), "mmacs": model_mmacs(layers)}


def terms_ms(cal: Calibration | None, layers: list[Layer]) -> float:
    """What the calibration's activation and MACs terms charge for ``layers``, beside their tables."""
    return sum(calibration_terms_ms(cal, x, x.cin, x.cout) for x in layers) if cal else 0.0


def fit_line(points: list[dict]) -> Calibration:
    """measured ≈ scale * layers_ms + offset, least squares weighted by :func:`point_weights` (a constant offset
    with fewer than 2 distinct sums)."""
    layers = np.array([p["layers_ms"] for p in points])
    measured, w = np.array([p["measured_ms"] for p in points]), point_weights(points)
    if len(points) >= 2 and np.ptp(layers) > 0:
        scale, offset = np.polyfit(layers, measured, 1, w=np.sqrt(w))
    else:
        scale, offset = 1.0, float(np.average(measured - layers, weights=w))
    return Calibration(float(scale), float(offset), points)


def _columns(points: list[dict], form: str) -> np.ndarray:
    return np.column_stack([[p[f] for p in points] for f in FORMS[form]] + [np.ones(len(points))])


def _solve(points: list[dict], form: str) -> np.ndarray | None:
    """Least-squares coefficients of ``form``; None when the points cannot tell its terms apart (a constant or
    collinear column) or a weight comes out negative (no physical reading)."""
    a = _columns(points, form)
    coef, _, rank, _ = np.linalg.lstsq(a, np.array([p["measured_ms"] for p in points]), rcond=None)
    return None if rank < a.shape[1] or (coef[:-1] <= 0).any() else coef


def _loo_error(points: list[dict], form: str) -> float:
    """RMS relative error of each point predicted by the form fitted on the others."""
    errors = []
    for i, p in enumerate(points):
        coef = _solve(points[:i] + points[i + 1 :], form)
        if coef is None:
            return math.inf
        predicted = float(_columns([p], form)[0] @ coef)
        errors.append((predicted - p["measured_ms"]) / p["measured_ms"])
    return math.sqrt(float(np.mean(np.square(errors))))


def fit_calibration(points: list[dict]) -> Calibration:
    """The calibration of the form that predicts left-out points best; the plain line when the points carry
    no ``act_mb``, are too few to leave one out, or were not timed beside the dense model (no ``dense_ms``:
    their ms carry the machine's drift between runs, and a term fitted to them explains the drift; so it was
    on the cpu-ort profile of 2026-12-03). The form, and the ratio of its terms, come from the points other
    than the planner's own plans, as the lookup does (``choose_lookup_and_calibrate``); the line through the
    composite is then fitted on all of them, weighted (:func:`point_weights`)."""
    chooses = [p for p in points if not is_planned(p)]
    forms = [f for f, feats in FORMS.items() if f == "tables" or (
        all(k in p for p in points for k in feats) and len(chooses) > MIN_POINTS_PER_TERM * (len(feats) + 1))]
    if len(forms) == 1 or len(chooses) <= MIN_POINTS_PER_TERM * 2 or any("dense_ms" not in p for p in points):
        return fit_line(points)
    # a form with terms beyond the tables' must leave out points clearly better than the plain line (OpenVINO int8
    # MobileNet-V2: a MACs term 5 % better in leave-one-out priced random plans 11 % off, the line 4 %)
    error = {f: _loo_error(chooses, f) * (GAIN_NEEDED if f == "tables" else 1.0) for f in forms}
    for form in sorted(forms, key=error.get):  # stable: the line first among ties
        if form == "tables":
            break
        coef = _solve(chooses, form)
        if coef is None:
            continue
        # the terms' ratio (what ranks one cut against another) from the same runs as the form; the line through
        # the composite (what a plan is priced at) from all of them, weighted: the planner's own runs change
        # the price of a plan, never which plan is made
        first, *rest = FORMS[form]
        if first != "layers_ms":  # a term alone, the tables left out
            line = fit_line([{**p, "layers_ms": p[first]} for p in points])
            if line.scale > 0:
                return Calibration(1.0, line.offset_ms, points, tables=False, **{WEIGHT_FIELD[first]: line.scale})
        else:
            ratio = float(coef[1] / coef[0])  # ms per unit of the term over ms per table ms
            line = fit_line([{**p, "layers_ms": p["layers_ms"] + ratio * p[rest[0]]} for p in points])
            if line.scale > 0:
                return Calibration(line.scale, line.offset_ms, points, **{WEIGHT_FIELD[rest[0]]: line.scale * ratio})
    return fit_line(points)


def refit_stored(profile: Profile, name: str) -> Calibration:
    """``name``'s calibration fitted again on the points ``profile`` stores, their layer ms taken from the profile
    as it stands (lookup, width corrections, misalignment): no timing. After a fit changed the tables' terms, or
    for a profile fitted before the activation term."""
    model = LatencyModel(profile, name)
    points = [{**p, "layers_ms": model.layers_ms(ls), **point_features(ls)}
              for p in profile.calibration[name].points for ls in [profile.model_layers(name, p)]]  # fmt: skip
    return fit_calibration(points)


def refit_profile(profile: Profile, names: list[str] | None = None, line: bool = False) -> Profile:
    """A copy of ``profile`` with the calibrations of ``names`` (default: all) refitted on the points it stores
    (:func:`refit_stored`): no timing. For a profile fitted before a form existed. ``line``: the plain line on
    the same refreshed points, whatever form the fit would choose."""
    fitted = {name: refit_stored(profile, name) for name in (profile.calibration if names is None else names)}
    if line:
        fitted = {name: fit_line(cal.points) for name, cal in fitted.items()}
    return replace(profile, calibration={**profile.calibration, **fitted})


def describe(cal: Calibration) -> str:
    """The calibration in words: its terms and offset."""
    terms = ([f"{cal.scale:.3f} x layers"] if cal.tables else []) + (
        [f"{cal.ms_per_mb:.3f} ms/MB x activations"] if cal.ms_per_mb else []) + (
        [f"{cal.ms_per_mmac:.4f} ms/MMAC x MACs"] if cal.ms_per_mmac else [])  # fmt: skip
    return f"{' + '.join(terms)} {cal.offset_ms:+.3f} ms"
