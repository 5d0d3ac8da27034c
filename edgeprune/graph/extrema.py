"""max and min: between tensors, elementwise; over a dim, a reduction that also returns where the extremes sit
(a named tuple whose fields the model may read by name)."""

from __future__ import annotations

import torch

from edgeprune.graph.rules import elementwise, mixing_all, reduction

_FIELDS = {"values": 0, "indices": 1}


def extremum(ctx, node, args, kwargs, ids, ids_kw, out):
    """``torch.max(a, b)`` is elementwise; ``x.max(dim)`` reduces, its indices sitting where its values do."""
    if len(args) > 1 and isinstance(args[1], torch.Tensor):
        return elementwise(ctx, node, args, kwargs, ids, ids_kw, out)
    if not isinstance(out, tuple):  # over every element
        return mixing_all(ctx, node, args, kwargs, ids, ids_kw, out)
    values = reduction(ctx, node, args, kwargs, ids, ids_kw, out[0])
    return (values, values)


def tuple_field(ctx, node, args, kwargs, ids, ids_kw, out):
    """``x.max(1).values``: a named field of what such an op returned."""
    if isinstance(ids[0], tuple) and len(args) > 1 and args[1] in _FIELDS:
        return ids[0][_FIELDS[args[1]]]
    return ctx.unknown(node, ids, ids_kw, out)
