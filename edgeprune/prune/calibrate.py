"""What each channel does on real inputs: its mean where it is consumed (for compensation in shrink) and how much
the model's output moves when it is removed (importance), measured on calibration images in one pass.

Weight energy ranks channels by their weights alone. On a model whose batch norms were folded into its convs
(the rebuilt Ultralytics checkpoints: every norm is identity plus bias) it sees neither the bias a channel
carries nor how much of the output depends on it, and normalized per group it makes every group's channels
equally worth keeping, so the planner cuts where the time is (a detector's stem and P3 layers, which it needs
most). The score here is in one unit for every group: the first-order change of the model's output.

For a unit (one channel, at every layer that reads it) with activation ``a`` and mean ``mu`` at each of its
consumers, removing it and folding ``mu`` into the consumers' biases changes the output by about
``J (a - mu)``. Its squared norm, ``||J (a - mu)||^2``, is estimated without labels or a loss through a random
projection ``v ~ N(0, I)`` of the output: ``E_v[(v . J (a - mu))^2]``, where ``v . J (a - mu)`` is the sum over
positions and consumers of ``(a - mu) * d(v . y)/da`` (Molchanov et al.'s Taylor criterion with a random
surrogate loss). One forward and one backward per batch.

A model may weigh its outputs: ``model.output_weights(x, y)`` (when it has the method) returns a tensor that
broadcasts against ``y`` and multiplies it before the projection. A YOLO detector weighs each scale's anchors
so that every scale counts the same (:class:`edgeprune.models.ultralytics_models.YoloRaw`): unweighted, P5's
400 anchors of 8400 at 640 make the coarse scales' head convs look cheap, and cutting them cost 11 to 13
mAP50-95 points each on YOLOv8n. A model with several outputs (a torchvision detector's heads, a dict) has
each output tensor projected apart and scaled by one over the root of its per-sample size, so that each counts
alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from edgeprune.errors import InputError
from edgeprune.graph import tree_tensors
from edgeprune.graph.groups import CONV_IN, LAST_DIM_KINDS, LINEAR_IN, RNN_IN, ChannelGraph

MEASURED_KINDS = (CONV_IN, LINEAR_IN, RNN_IN)


@dataclass
class ChannelStats:
    """Per consumer layer (module path): the mean of each input channel (a linear's: each input feature);
    per prunable group: each unit's output-change score (see the module docstring)."""

    means: dict[str, torch.Tensor]
    scores: dict[int, torch.Tensor]
    images: int


def _consumers(graph: ChannelGraph) -> dict[str, str]:
    """Module path -> member kind of every layer that reads a prunable group's channels."""
    return {m.path: m.kind for g in graph.prunable_groups for u in g.units for m in u.members
            if m.kind in MEASURED_KINDS}  # fmt: skip


def _channel_dims(kind: str, a: torch.Tensor) -> tuple[int, ...]:
    """Dims summed per channel: every spatial dim for a conv's input, every leading dim for a linear's (not batch)."""
    return tuple(range(2, a.dim())) if kind == CONV_IN else tuple(range(1, a.dim() - 1))


def measure_channels(model: nn.Module, graph: ChannelGraph, images: torch.Tensor, batch_size: int = 8,
                     seed: int = 0) -> ChannelStats:  # fmt: skip
    """Means and output-change scores of ``graph``'s channels on ``images`` (N, C, H, W, as the model takes them).

    ``model`` runs in eval mode; its parameters are not changed and get no gradients."""
    if images.dim() < 2 or len(images) == 0:
        raise InputError(f"calibration needs a batch of images; got a tensor of shape {tuple(images.shape)}")
    consumers = _consumers(graph)
    sums: dict[str, list[torch.Tensor]] = {}  # path -> per image: [sum a, sum a * g, sum g, positions]
    live: dict[str, torch.Tensor] = {}

    def record(path: str):
        def hook(module, args):
            a = args[0]
            if a.requires_grad:
                a.retain_grad()
            live[path] = a

        return hook

    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    grads = [p.requires_grad for p in model.parameters()]
    handles = [model.get_submodule(p).register_forward_pre_hook(record(p)) for p in consumers]
    # recurrent layers that take (sequence, batch, features): the per-image sums want the batch first
    sequence_first = {p for p, kind in consumers.items() if kind == RNN_IN and not model.get_submodule(p).batch_first}
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        for batch in images.float().split(batch_size):
            with torch.enable_grad():
                y = model(batch.clone().requires_grad_(True))
                if isinstance(y, torch.Tensor):
                    weigh = getattr(model, "output_weights", None)
                    w = weigh(batch, y) if callable(weigh) else None
                    outputs, scales = [y if w is None else y * w], [1.0]
                else:
                    outputs = tree_tensors(y)
                    if not outputs:
                        raise InputError(f"calibration needs a model that returns tensors; {type(model).__name__} "
                                         f"returns {type(y).__name__}")  # fmt: skip
                    scales = [t[0].numel() ** -0.5 for t in outputs]
                sum((t * torch.randn(t.shape, generator=gen)).sum() * c for t, c in zip(outputs, scales)).backward()
            for path, a in live.items():
                g = a.grad if a.grad is not None else torch.zeros_like(a)
                if path in sequence_first:
                    a, g = a.transpose(0, 1), g.transpose(0, 1)
                dims = _channel_dims(consumers[path], a)
                a, g = a.detach().double(), g.double()
                per = [t.sum(dims) if dims else t for t in (a, a * g, g)]  # sum(()) would sum everything
                count = a[0].numel() // a.shape[-1 if consumers[path] in LAST_DIM_KINDS else 1]
                s = sums.setdefault(path, [[], [], [], 0])
                for k in range(3):
                    s[k].append(per[k])
                s[3] += count * a.shape[0]
            live.clear()
    finally:
        for h in handles:
            h.remove()
        for p, flag in zip(model.parameters(), grads):
            p.requires_grad_(flag)
        model.train(was_training)
    means, taylor = {}, {}
    for path, (a_sum, ag, g_sum, count) in sums.items():
        means[path] = torch.cat(a_sum).sum(0) / count
        taylor[path] = torch.cat(ag) - means[path] * torch.cat(g_sum)  # per image and channel: v . J (a - mu)
    return ChannelStats({p: m.float() for p, m in means.items()}, _unit_scores(graph, taylor), len(images))


def _unit_scores(graph: ChannelGraph, taylor: dict[str, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Per group: each unit's first-order output change summed over its consumers, squared, averaged over images."""
    out = {}
    for group in graph.prunable_groups:
        n = next(iter(taylor.values())).shape[0] if taylor else 0
        change = torch.zeros(n, group.size, dtype=torch.float64)
        for u, unit in enumerate(group.units):
            for m in unit.members:
                if m.kind in MEASURED_KINDS and m.path in taylor:
                    change[:, u] += taylor[m.path][:, m.index]
        out[group.id] = change.pow(2).mean(0)
    return out
