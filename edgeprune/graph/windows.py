"""Sliding windows as columns and back: ``nn.Unfold`` / ``F.unfold`` (im2col) and ``nn.Fold`` / ``F.fold``
(col2im), as VOLO's outlook attention uses them.

Unfold puts channel c's k*k window values in rows c*k*k ... c*k*k + k*k - 1 (zero padding holds no channel);
fold sums each such run of rows back into channel c. Both keep channels apart, so both prune.
"""

from __future__ import annotations

import torch

from edgeprune.graph.ids import NO_CHANNEL, along, compress, expand_full
from edgeprune.graph.rules import call_target, mixing_all


def unfold_windows(ctx, node, args, kwargs, ids, ids_kw, out):
    """im2col run on the id tensor itself (in float64, exact for any id count; im2col has no integer kernel)."""
    full = expand_full(ids[0], args[0].shape).to(torch.float64)
    columns = call_target(node, ctx.module(node), (full, *args[1:]), kwargs)
    return compress(columns.round().to(torch.long))


def fold_windows(ctx, node, args, kwargs, ids, ids_kw, out):
    """col2im: every id in channel c's run of rows joins channel c; a run holding another run's channel mixes."""
    x = args[0]
    channels = out.shape[-3]
    rows = expand_full(ids[0], x.shape).reshape(-1, x.shape[-2], x.shape[-1])[0]  # (C*k*k, L) of the first image
    if rows.shape[0] % channels:
        return mixing_all(ctx, node, args, kwargs, ids, ids_kw, out)
    runs = rows.reshape(channels, -1)
    anchors = runs.max(dim=1).values  # a channel id of each run (padding holds NO_CHANNEL, the smallest id)
    if bool((anchors == NO_CHANNEL).any()):
        return mixing_all(ctx, node, args, kwargs, ids, ids_kw, out)
    ctx.cu.union_tensors(anchors[:, None], runs)
    if len({ctx.cu.find(int(a)) for a in anchors}) != channels:
        return mixing_all(ctx, node, args, kwargs, ids, ids_kw, out)
    return along(anchors, out.ndim - 3, out.ndim)
