"""Stage: plans and physical pruning."""

from __future__ import annotations

import torch
import torch.nn as nn

from edgeprune.graph.groups import ChannelGraph
from edgeprune.prune.calibrate import ChannelStats, measure_channels
from edgeprune.prune.importance import magnitude_scores, uniform_plan
from edgeprune.prune.oracle import masked_forward, relative_error
from edgeprune.prune.plan import Plan, PlanError
from edgeprune.prune.reconstruct import Refit, refit_layers
from edgeprune.prune.serialize import (
    ArchSpecError,
    arch_spec,
    input_chw,
    load_model_ref,
    load_pruned,
    save_pruned,
)
from edgeprune.prune.shrink import shrink


def prune_model(
    model: nn.Module, graph: ChannelGraph, plan: Plan, previous: dict | None = None,
    input_size: tuple[int, ...] | None = None, means: dict[str, torch.Tensor] | None = None,
) -> tuple[nn.Module, dict]:  # fmt: skip
    """Shrink ``model`` by ``plan``; returns the smaller model and the arch spec to save with it.

    ``previous`` are the arch changes ``model`` already carries (when pruning a pruned model again);
    ``input_size`` the (C, H, W) it works at, recorded when it is not the registry's; ``means`` the calibration
    means whose removed channels shrink folds into the next layers (:class:`ChannelStats`).
    """
    pruned, changes = shrink(model, graph, plan, means)
    merged = {k: dict(v) for k, v in (previous or {}).items()}
    for path, attrs in changes.items():  # changes hold absolute sizes, so the newer ones win
        # a layer replaced (a removed branch's) is built anew from its entry: earlier resizes do not apply
        merged[path] = dict(attrs) if "replaces" in attrs else {**merged.get(path, {}), **attrs}
    return pruned, arch_spec(graph.model_name, graph.model_kwargs, graph.fingerprint, merged, input_size)


__all__ = [
    "ArchSpecError",
    "ChannelStats",
    "Plan",
    "PlanError",
    "arch_spec",
    "input_chw",
    "load_model_ref",
    "load_pruned",
    "magnitude_scores",
    "masked_forward",
    "measure_channels",
    "prune_model",
    "refit_layers",
    "Refit",
    "relative_error",
    "save_pruned",
    "shrink",
    "uniform_plan",
]
