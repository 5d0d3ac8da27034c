"""Activations with more than one input per output: PReLU's learned slope per channel, GLU's gate (one half of
the channels times the sigmoid of the other)."""

from __future__ import annotations

from edgeprune.graph.groups import PARAM
from edgeprune.graph.ids import along, compress, expand_full, position_reps
from edgeprune.graph.rules import elementwise


def prelu(ctx, node, args, kwargs, ids, ids_kw, out):
    """``nn.PReLU(C)``: channel c's slope is ``weight[c]`` and goes with it; ``nn.PReLU()`` (one slope for all)
    is elementwise."""
    module = ctx.module(node)
    if module.weight.numel() == 1:
        return elementwise(ctx, node, args, kwargs, ids, ids_kw, out)
    reps = position_reps(ctx.cu, ids[0], 1, args[0].shape[1])
    ctx.attach(reps, PARAM, f"{node.target}.weight", dim=0)
    return along(reps, 1, out.ndim)


def glu(ctx, node, args, kwargs, ids, ids_kw, out):
    """GLU along ``dim``: position i of the first half is gated by position i of the second, so the two go
    together (a pruned pair keeps the halves equal)."""
    module = ctx.module(node)
    dim = module.dim if module is not None else args[1] if len(args) > 1 else kwargs.get("dim", -1)
    first, second = expand_full(ids[0], args[0].shape).chunk(2, dim)
    ctx.cu.union_tensors(first, second)
    return compress(first)
