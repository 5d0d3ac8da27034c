"""Rules found from torch's own op registry, and the reductions, sorts and index ops that keep channels apart
when they act along another dim.

An op that no table names is elementwise when torch tags its ATen op ``pointwise`` (``torch.sinh``,
``Tensor.lerp``, ``x % 2``, comparisons): position by position, whatever it computes, so a removed channel is
zeroed where it is read, as for an add.
"""

from __future__ import annotations

import functools
import operator

import torch
import torch.fx as fx

from edgeprune.graph.ids import varying_dims
from edgeprune.graph.rules import Rule, elementwise, mixing_all, reduction

# operator functions fx records for Python's operators on tensors, by ATen name
_OPERATORS = {operator.lt: "lt", operator.le: "le", operator.gt: "gt", operator.ge: "ge", operator.eq: "eq",
              operator.ne: "ne", operator.mod: "remainder", operator.and_: "bitwise_and", operator.or_: "bitwise_or",
              operator.xor: "bitwise_xor", operator.invert: "bitwise_not", operator.floordiv: "floor_divide",
              operator.abs: "abs", operator.pos: "positive"}  # fmt: skip
_UNTAGGED = {"floor_divide", "hardswish", "hardswish_", "abs_", "masked_fill", "masked_fill_", "positive"}


@functools.cache
def _pointwise(name: str) -> bool:
    if name in _UNTAGGED:
        return True
    packet = getattr(torch.ops.aten, name, None)
    if packet is None or not hasattr(packet, "overloads"):
        return False
    return any(torch.Tag.pointwise in getattr(packet, o).tags for o in packet.overloads())


def pointwise_rule(node: fx.Node) -> Rule | None:
    """The elementwise rule for a torch function, Tensor method or operator whose ATen op is pointwise."""
    if node.op == "call_method":
        name = node.target
    elif node.op == "call_function":
        target = node.target
        name = _OPERATORS.get(target)
        module = getattr(target, "__module__", "") or ""
        if name is None and (module.startswith("torch") or module == "") and hasattr(target, "__name__"):
            name = target.__name__  # torch.sinh, torch.nn.functional.logsigmoid, torch._C._nn.gelu
    else:
        return None
    return elementwise if isinstance(name, str) and _pointwise(name) else None


def statistic(ctx, node, args, kwargs, ids, ids_kw, out):
    """var / std (``dim``, then the legacy ``unbiased`` flag, then ``keepdim``): a reduction over ``dim``."""
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[3] if len(args) > 3 else kwargs.get("keepdim", False)
    return reduction(ctx, node, (args[0], dim, keepdim), {}, ids[:1], {}, out)


def sorting(dim_at: int) -> Rule:
    """sort (dim at 1), topk and kthvalue (dim at 2), returning (values, indices): along a dim that holds no
    channels each channel's values stay its own; along the channel axis, which value lands where depends on all
    of them."""

    def rule(ctx, node, args, kwargs, ids, ids_kw, out):
        x_ids = ids[0]
        dim = args[dim_at] if len(args) > dim_at else kwargs.get("dim", -1)
        if dim % x_ids.ndim in varying_dims(x_ids):
            return mixing_all(ctx, node, args, kwargs, ids, ids_kw, out)
        return (x_ids, x_ids)

    return rule


def scan(dim_at: int, default: int | None = None, pair: bool = False) -> Rule:
    """cumsum, cumprod, logcumsumexp, cummax / cummin (``pair``: values and indices) and diff (``dim`` at
    ``dim_at``, else ``default``): along a dim that holds no channels each channel's values stay its own (diff
    shortens that dim); along the channel axis, or with a tensor diff prepends or appends, each output reads
    other channels."""

    def rule(ctx, node, args, kwargs, ids, ids_kw, out):
        x_ids = ids[0]
        dim = (args[dim_at] if len(args) > dim_at else kwargs.get("dim", default)) % x_ids.ndim
        joined = [t for t in (*ids[1:], *ids_kw.values()) if isinstance(t, torch.Tensor)]
        if dim in varying_dims(x_ids) or joined:
            return mixing_all(ctx, node, args, kwargs, ids, ids_kw, out)
        length = (out[0] if pair else out).shape[dim]  # the ids do not vary along ``dim``: any stretch will do
        kept = x_ids if x_ids.shape[dim] in (1, length) else x_ids.narrow(dim, 0, length)
        return (kept, kept) if pair else kept

    return rule


def index_along(ctx, node, args, kwargs, ids, ids_kw, out):
    """index_select / gather by a tensor of positions along ``dim``: channels kept where ``dim`` holds none and
    the output keeps every channel position; else the positions pick channels by value: frozen."""
    x_ids, x = ids[0], args[0]
    dim = (args[1] if len(args) > 1 else kwargs["dim"]) % x.ndim
    varying = varying_dims(x_ids)
    if dim in varying or any(out.shape[d] != x.shape[d] for d in varying):
        return mixing_all(ctx, node, args, kwargs, ids, ids_kw, out)
    for index in ids[2:3]:
        if isinstance(index, torch.Tensor):
            ctx.cu.freeze(index, f"{ctx.where(node)}: tensor used as an index")
    return x_ids
