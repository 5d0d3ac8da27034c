"""Item assignment into a tensor that carries channels (``t[index] = v``), as MViTv2 adds its relative positions
into a region of the attention map: each written position's channel joins the channel of the value written
there, as an add would, so both prune alike. Written positions that held no channel (a tensor of zeros filled
with a layer's output) would need the tensor's channels to change in place: that is an op with no rule.
"""

from __future__ import annotations

import torch

from edgeprune.graph.ids import NO_CHANNEL, expand_full
from edgeprune.graph.rules import _has_tensor_index, _ids_of


def assign(ctx, node, args, kwargs, ids, ids_kw, out):
    """``operator.setitem(target, index, value)`` on a target with channels; returns None, as setitem does."""
    target, index = args[0], args[1]
    full = expand_full(ids[0], target.shape)
    if _has_tensor_index(index):
        for i in ids[1] if isinstance(ids[1], tuple) else (ids[1],):
            if isinstance(i, torch.Tensor):  # positions used as an index can never be pruned
                ctx.cu.freeze(i, f"{ctx.where(node)}: tensor used as an index")
    region = full[index]
    value = ids[2] if len(ids) > 2 and isinstance(ids[2], torch.Tensor) else None
    if value is not None:
        value = torch.broadcast_to(value, region.shape)
        if bool(((region == NO_CHANNEL) & (value != NO_CHANNEL)).any()):
            return ctx.unknown(node, ids, ids_kw, out)
        ctx.cu.union_tensors(region, value)
    if _ids_of(region) != _ids_of(full):
        reason = f"{ctx.where(node)}: an assignment writes into a fixed range of channels"
        ctx.cu.freeze(full, reason)
        if value is not None:
            ctx.cu.freeze(value, reason)
    return None
