"""What removing a residual branch saves inside the network, measured: one scale per layer geometry and model.

The tables time each layer alone, and the calibration line was fitted on plans where every layer still
runs, so a layer that stops running is priced by extrapolation. On ResNet-56 / cpu-ort that extrapolation
overstated most what removing stage-1 branches saves (README: "Removing residual branches"). This times
variants of the network that each remove every other branch of one kind (the branches whose layers have the
same geometries), or all of them, beside the dense model, and records the measured saving over the predicted one,
``Profile.removal_scale``. A removed layer then leaves ``(1 - s)`` of its dense cost in the prediction
(:class:`edgeprune.latency.model.LatencyModel`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from edgeprune.graph import build_graph
from edgeprune.latency.costs import MacsCost
from edgeprune.latency.innet import RIDGE, SCALE_RANGE, Fitted, time_with_control
from edgeprune.latency.layers import Layer, collect_layers
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import DEFAULT_SETTINGS, Profile, ProfileError, ProfileSettings
from edgeprune.latency.profiler import build_model, model_input_shape
from edgeprune.prune import Plan, prune_model
from edgeprune.targets import Target


def predicted_ratio(profile: Profile, name: str, dense: list[Layer], removed: set[str]) -> float:
    """Predicted ms with the layers at ``removed`` paths gone, over the dense model's."""
    model = LatencyModel(profile, name)
    left = [x for x in dense if x.path not in removed]
    return model.predict_pruned(dense, left).ms / model.predict(dense).ms


def fit_removal(profile: Profile, target: Target, name: str, rounds: int = 2,
                settings: ProfileSettings = DEFAULT_SETTINGS) -> Fitted:  # fmt: skip
    """Time two variants per kind of branch in ``name`` (every other such branch removed; all of them) beside
    the dense model, and fit the model's removal scales. Returns the profile with them and a row per variant.

    ``rounds``: how long the variants are timed, in multiples of the target's rounds; ``settings``: the
    control's tolerance."""
    model, shape = build_model(name, target), model_input_shape(name, target)
    graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=name)
    dense = collect_layers(model, shape)
    if not graph.branches:
        raise ProfileError(f"{name} has no residual branch that a plan could remove: nothing to fit")
    geometry = {x.path: x.geometry.key for x in dense}
    kinds: dict[tuple[str, ...], list[int]] = {}
    for gid, branch in graph.branches.items():
        keys = tuple(geometry[p] for p in (*branch.inner_layers, branch.tail) if p in geometry)
        kinds.setdefault(keys, []).append(gid)
    variants, removed = {}, {}
    for i, gids in enumerate(kinds.values()):
        # about half of them, spread over their stage; and all of them, which saves more than twice as much
        # where a whole stage empties (ResNet-56 / cpu-ort: its layout transitions go too)
        for chosen in (gids[::2], gids) if len(gids) > 1 else (gids,):
            label = f"kind{i} ({len(chosen)} of {len(gids)} branches)"
            plan = Plan(name, graph.fingerprint, {g: [] for g in chosen})
            variants[label] = prune_model(model, graph, plan)[0].eval()
            removed[label] = {p for g in chosen for p in (*graph.branches[g].inner_layers, graph.branches[g].tail)
                              if p in geometry}  # fmt: skip
    ms, control = time_with_control(target, name, model, variants, shape, rounds, settings.control_tolerance)
    plain = replace(profile, removal_scale={k: v for k, v in profile.removal_scale.items() if k != name})
    before = {v: predicted_ratio(plain, name, dense, removed[v]) for v in variants}
    # One equation per variant: the predicted ms its removed layers save, per geometry, times that geometry's
    # scale, equals the measured share of the dense model's predicted ms. Kinds of branch share geometries
    # (a stage's first block and the rest), so the scales are solved together, pulled towards 1 (RIDGE).
    cost = LatencyModel(plain, name)
    dense_ms = cost.predict(dense).ms
    keys = sorted({geometry[p] for paths in removed.values() for p in paths})
    a = np.zeros((len(variants), len(keys)))
    for i, v in enumerate(variants):
        for x in dense:
            if x.path in removed[v]:
                a[i, keys.index(x.geometry.key)] += cost.total(cost.layer(x, x.cin, x.cout)) - cost.total(0.0)
    y = np.array([(1 - ms[v] / ms["dense"]) * dense_ms for v in variants])
    lam = RIDGE * float(np.abs(a).max(initial=1e-9))
    fitted = np.linalg.lstsq(np.vstack([a, lam * np.eye(len(keys))]), np.concatenate([y, lam * np.ones(len(keys))]),
                             rcond=None)[0]  # fmt: skip
    scales = {k: round(float(np.clip(v, *SCALE_RANGE)), 4) for k, v in zip(keys, fitted)}
    out = replace(profile, removal_scale={**profile.removal_scale, name: scales})
    after = {v: predicted_ratio(out, name, dense, removed[v]) for v in variants}
    macs = MacsCost()
    total_macs = sum(macs.layer(x, x.cin, x.cout) for x in dense)
    macs_removed = {v: sum(macs.layer(x, x.cin, x.cout) for x in dense if x.path in removed[v]) / total_macs
                    for v in variants}  # fmt: skip
    return Fitted(out, [{"variant": v, "measured_ratio": ms[v] / ms["dense"], "control_ratio": control,
                         "predicted_ratio_before": before[v], "predicted_ratio_after": after[v],
                         "macs_removed": macs_removed[v]} for v in variants])  # fmt: skip
