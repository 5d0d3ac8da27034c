"""In-network width corrections: what narrowing each layer geometry saves inside the network, measured.

A table is measured on a lone layer (a micro-model). Inside a network the same narrowing can save less or
more: on ResNet-56 under onnxruntime, stage 1 narrowed 16 -> 8 saved nothing end to end where its tables
promised 6 %. This fits one scale per geometry and model on the table's saving from the model's dense
widths, ``Profile.width_scale``, from variants of the network that each narrow the inner channels of the
groups touching one geometry to a few widths, all timed beside the dense model in alternating rounds.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from edgeprune.backends import time_runners
from edgeprune.errors import EdgepruneError
from edgeprune.graph import build_graph
from edgeprune.latency.calibration import refit_stored, terms_ms
from edgeprune.latency.layers import Layer, collect_layers, on_blocking
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import DEFAULT_SETTINGS, Profile, ProfileError, ProfileSettings
from edgeprune.latency.profiler import build_model, model_input_shape, prepare_model
from edgeprune.prune import Plan, prune_model
from edgeprune.targets import Target

SCALE_RANGE = (0.0, 3.0)
FRACTIONS = (0.25, 0.5, 0.75)  # several widths per geometry: a scale fitted at one width misjudged others
CONTROL_ATTEMPTS = 3  # interleaved runs before a fit gives up on an unsteady machine
RIDGE = 0.05  # pull towards s = 1 (the table as measured), relative to the typical saving


class UnsteadyMeasurement(EdgepruneError, RuntimeError):
    """Identical models timed apart: the machine moved more than the effect being measured."""


class Fitted(NamedTuple):
    """What a fit returns: the profile with the fitted terms (a copy; the fit leaves its input as it was) and
    a row per variant it timed."""

    profile: Profile
    rows: list[dict]


def narrowed_keep(group, fraction: float, align: int) -> list[int]:
    """Frozen units plus the first prunable ones: the width nearest ``fraction`` of the group among those the
    planner may choose (multiples of ``align``, or its divisors: a 16-channel group goes to 4 and 8, since
    on cpu-ort ResNet-56's stage 1 saved nothing at 8 and 9 % end to end at 4)."""
    frozen = [i for i in range(group.size) if group.units[i].frozen]
    units = group.prunable_units
    n = round(fraction * group.size / align) * align
    if n < align:  # below one block: the divisor of the blocking nearest the fraction
        divisors = [w for w in range(1, align + 1) if on_blocking(w, align)]
        n = min(divisors, key=lambda w: (abs(w - fraction * group.size), -w))
    n -= len(frozen)
    return sorted(frozen + units[: max(1, min(len(units), n))])


def _variant(model, graph, groups, fraction: float, align: int) -> torch.nn.Module:
    keep = {g.id: narrowed_keep(g, fraction, align) for g in groups}
    return prune_model(model, graph, Plan(graph.model_name, graph.fingerprint, keep))[0].eval()


def _changed_keys(dense: list[Layer], narrow: list[Layer]) -> set[str]:
    if [x.path for x in dense] != [x.path for x in narrow]:
        raise RuntimeError("narrowing a group changed the network's layers, not only their widths")
    return {n.geometry.key for d, n in zip(dense, narrow) if (d.cin, d.cout) != (n.cin, n.cout)}


def table_savings(profile: Profile, dense: list[Layer], narrow: list[Layer], name: str = "") -> dict[str, float]:
    """Per geometry: layer ms the tables alone (no width scale, no misalignment term) save from ``dense``
    to ``narrow``, with model ``name``'s lookup."""
    plain = LatencyModel(replace(profile, width_scale={}), name)
    plain.misalign = {}
    out: dict[str, float] = {}
    for d, n in zip(dense, narrow):
        saved = plain.layer_ms(d, d.cin, d.cout)[0] - plain.layer_ms(n, n.cin, n.cout)[0]
        out[d.geometry.key] = out.get(d.geometry.key, 0.0) + saved
    return out


def fit_widths(profile: Profile, target: Target, name: str, fractions: tuple[float, ...] = FRACTIONS, align: int = 8,
               rounds: int = 2, settings: ProfileSettings = DEFAULT_SETTINGS) -> Fitted:  # fmt: skip
    """Measure variants of ``name`` that narrow each geometry to each of ``fractions`` (distinct widths only),
    fit the model's width scales for those geometries, and refit its calibration line on its stored points.
    Returns the profile with them and a row per variant.

    ``rounds``: how long the variants are timed, in multiples of the target's rounds; ``settings``: the
    control's tolerance."""
    if not getattr(profile.calibration.get(name), "tables", True):
        raise ProfileError(f"{name}'s calibration leaves the layer tables out (its activations alone predicted its "
                           "runs better): there are no table widths to correct")  # fmt: skip
    model, shape = build_model(name, target), model_input_shape(name, target)
    graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=name)
    dense = collect_layers(model, shape)
    groups = [g for g in graph.prunable_groups if not g.shared and g.size >= 2 * align]
    touches = {g.id: _changed_keys(dense, collect_layers(_variant(model, graph, [g], min(fractions), align), shape))
               for g in groups}  # fmt: skip
    by_groups: dict[tuple, str] = {}
    for key in sorted({k for ks in touches.values() for k in ks}):
        ids = tuple(g.id for g in groups if key in touches[g.id])
        by_groups.setdefault(ids, key)  # geometries always narrowed together share one variant
    variants, geometry = {}, {}
    for ids, key in by_groups.items():
        chosen, widths = [g for g in groups if g.id in ids], set()
        for f in fractions:  # one variant per distinct set of widths: 0.75 of 16 channels rounds back to 16
            w = tuple(len(narrowed_keep(g, f, align)) for g in chosen)
            if w not in widths and w != tuple(g.size for g in chosen):
                widths.add(w)
                variants[f"{key}@{f:g}"], geometry[f"{key}@{f:g}"] = _variant(model, graph, chosen, f, align), key
    ms, control = time_with_control(target, name, model, variants, shape, rounds, settings.control_tolerance)
    narrow = {v: collect_layers(m, shape) for v, m in variants.items()}
    savings = {v: table_savings(profile, dense, layers, name) for v, layers in narrow.items()}
    keys = sorted({k for s in savings.values() for k, v in s.items() if abs(v) > 1e-9})
    cal = profile.calibration.get(name)
    scale = cal.scale if cal else 1.0
    a = np.array([[savings[v].get(k, 0.0) for k in keys] for v in variants])
    # the misalignment, activation and MACs terms' shares of a saving are theirs to explain, not the table's
    off_blocking = {v: _misalign_ms(profile, name, layers) for v, layers in {"dense": dense, **narrow}.items()}
    y = np.array([(ms["dense"] - ms[v] - (terms_ms(cal, dense) - terms_ms(cal, narrow[v]))) / scale
                  + off_blocking[v] - off_blocking["dense"] for v in variants])  # fmt: skip
    lam = RIDGE * float(np.abs(a).max(initial=1e-9))  # ridge rows: lam * (s_k - 1) = 0
    a_aug, y_aug = np.vstack([a, lam * np.eye(len(keys))]), np.concatenate([y, lam * np.ones(len(keys))])
    fitted = np.clip(np.linalg.lstsq(a_aug, y_aug, rcond=None)[0], *SCALE_RANGE)
    before = _ratios(profile, name, narrow, dense)
    out = profile.with_width_scales(name, {k: round(float(s), 4) for k, s in zip(keys, fitted)}, dense)
    if cal:
        out = replace(out, calibration={**out.calibration, name: refit_stored(out, name)})
    after = _ratios(out, name, narrow, dense)
    scales = out.width_scale[name]["scales"]
    return Fitted(out, [{"variant": v, "geometry": geometry[v], "measured_ratio": ms[v] / ms["dense"],
                         "control_ratio": control, "predicted_ratio_before": before[v],
                         "predicted_ratio_after": after[v], "width_scale": scales.get(geometry[v])}
                        for v in variants])  # fmt: skip


def _ratios(profile: Profile, name: str, narrow: dict[str, list[Layer]], dense: list[Layer]) -> dict[str, float]:
    """Each variant's predicted ms relative to the dense model's, as the profile stands."""
    model = LatencyModel(profile, name)
    dense_ms = model.predict(dense).ms
    return {v: model.predict(layers).ms / dense_ms for v, layers in narrow.items()}


def _misalign_ms(profile: Profile, name: str, layers: list[Layer]) -> float:
    model = LatencyModel(profile, name)
    return sum(model.misalign_ms(x.geometry, x.cin, x.cout) for x in layers)


def time_with_control(target: Target, name: str, model, variants: dict, shape, rounds: int,
                      tolerance: float = DEFAULT_SETTINGS.control_tolerance, attempts: int | None = None
                      ) -> tuple[dict[str, float], float]:  # fmt: skip
    """Ms of the dense model, ``variants`` and a control, in one interleaved run (each on the dense model's scale:
    its median times the paired ratio, :meth:`edgeprune.timing.Timing.paired_ms`); and the control's ratio.

    The control is a second session of the dense model: identical work, so its ratio to "dense" is the
    measurement's own error in this run. Past ``tolerance`` a fit would be fitting noise, and the run is
    timed again with new sessions (two sessions of one model can differ by several per cent for as long as
    they live), up to ``attempts`` runs in all (default ``CONTROL_ATTEMPTS``).
    """
    seen, attempts = [], attempts or CONTROL_ATTEMPTS
    for _ in range(attempts):
        ms = _time(target, {"dense": model.eval(), **variants, "control": model.eval()}, shape, rounds)
        control = ms["control"] / ms["dense"]
        if abs(control - 1) <= tolerance:
            return ms, control
        seen.append(f"{100 * (control - 1):+.1f} %")
    raise UnsteadyMeasurement(
        f"{name}: two sessions of the same dense model timed {', '.join(seen)} apart in {attempts} interleaved "
        f"runs (tolerance {tolerance:.0%}): this machine's speed is too unsteady for an in-network fit now; run "
        "it again, or on a quieter machine"
    )


def _time(target: Target, models: dict, shape, rounds: int) -> dict[str, float]:
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        runners = {k: prepare_model(target, m, shape, Path(tmp) / f"variant{i}.onnx")
                   for i, (k, m) in enumerate(models.items())}  # fmt: skip
        timed = time_runners(runners, x, replace(target, rounds=target.rounds * rounds), reference="dense")
    return timed.paired_ms()
