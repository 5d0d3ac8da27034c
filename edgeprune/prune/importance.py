"""Per-channel importance scores (magnitude here; regularizer-specific scores come with training)."""

from __future__ import annotations

import torch
import torch.nn as nn

from edgeprune.graph.groups import (
    CONV_IN,
    CONV_OUT,
    LINEAR_IN,
    LINEAR_OUT,
    NORM,
    RNN_IN,
    ChannelGraph,
    ChannelGroup,
    rnn_input_weights,
    weight_dims,
)
from edgeprune.prune.plan import Plan, PlanError

_WEIGHT_SIDE = {CONV_OUT: 0, LINEAR_OUT: 0, CONV_IN: 1, LINEAR_IN: 1}  # index into weight_dims()


def magnitude_scores(model: nn.Module, group: ChannelGroup) -> torch.Tensor:
    """Energy of each unit: sum of squares of every weight slice it owns (producers and consumers).

    This is the out-in channel energy of OICSR, generalized to whole groups.
    """
    scores = torch.zeros(group.size, dtype=torch.float64)
    modules = dict(model.named_modules())
    for u, unit in enumerate(group.units):
        for m in unit.members:
            module = modules.get(m.path)
            if m.kind in _WEIGHT_SIDE and module is not None:
                weight = module.weight.detach()
                if m.kind == CONV_IN and getattr(module, "groups", 1) > 1:
                    continue  # grouped conv: the block's output rows already carry its weights
                dim = weight_dims(module)[_WEIGHT_SIDE[m.kind]]
                scores[u] += weight.select(dim, m.index).double().pow(2).sum()
            elif m.kind == RNN_IN and module is not None:
                for name in rnn_input_weights(module):
                    scores[u] += getattr(module, name).detach()[:, m.index].double().pow(2).sum()
            elif m.kind == NORM and module is not None and module.weight is not None:
                scores[u] += float(module.weight.detach()[m.index]) ** 2
    return scores


def uniform_plan(model: nn.Module, graph: ChannelGraph, ratio: float,
                 scores: dict[int, torch.Tensor] | None = None) -> Plan:  # fmt: skip
    """Remove the ``ratio`` least important prunable units of every prunable group (at least one kept): by
    ``scores`` (group id -> per-unit scores, e.g. calibrated ones) where given, else by weight energy."""
    if not 0.0 <= ratio < 1.0:
        raise PlanError(f"prune ratio must be in [0, 1), got {ratio}")
    keep: dict[int, list[int]] = {}
    for group in graph.prunable_groups:
        prunable = group.prunable_units
        n_remove = min(int(ratio * len(prunable)), len(prunable) - (0 if len(prunable) < group.size else 1))
        if n_remove <= 0:
            continue
        score = scores[group.id] if scores is not None and group.id in scores else magnitude_scores(model, group)
        order = sorted(prunable, key=lambda i: (float(score[i]), i))
        gone = set(order[:n_remove])
        keep[group.id] = [i for i in range(group.size) if i not in gone]
    return Plan(graph.model_name, graph.fingerprint, keep)
