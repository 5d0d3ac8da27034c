"""How each op moves channels: one rule per kind of behaviour (the op -> rule tables are in optable.py).

A rule receives the node's real (fake) input values, their id tensors and the real output, and returns
the output's id tensor(s). Rules merge channels (``ctx.cu.union_*``), freeze them, and attach the
module slices (members) that belong to each channel.

Kinds of behaviour:
- elementwise: output position p carries the channels of every input at p (residual add, SE gate).
- data movement (view, cat, pad, getitem, shuffle...; split and chunk are in splits.py): run the op on the
  id tensor itself, so any index map comes out exact, then add the constraints that keep the op valid at
  smaller widths.
- channelwise on dim 1 (pooling, interpolate, batch norm): channels pass through unchanged.
- consumers with weights (conv, linear): read channels, produce a fresh set.
- mixing (layer norm, softmax, matmul): removing a channel is not the same as zeroing it, so freeze.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx
import torch.nn as nn

from edgeprune.graph.groups import CONV_IN, CONV_OUT, LINEAR_IN, LINEAR_OUT, NORM, PARAM, REMAP_IN, REMAP_OUT
from edgeprune.graph.ids import (
    NO_CHANNEL,
    along,
    compress,
    expand_full,
    position_reps,
    varying_dims,
)
from edgeprune.graph.shape_reads import check_borrowed_sizes
from edgeprune.models.layers import BranchConstant, ChannelRemap

if TYPE_CHECKING:
    from edgeprune.graph.trace import TraceContext

Rule = Callable[["TraceContext", fx.Node, tuple, dict, tuple, dict, Any], Any]


def _tensor_ids(ids_args: tuple) -> list[torch.Tensor]:
    return [i for i in ids_args if isinstance(i, torch.Tensor)]


# ---------------------------------------------------------------------------------------------- elementwise
# op names (Tensor.add_, operator.iadd, torch.sub ...) without underscores; addcmul: input + value * t1 * t2
SUMMING = {"add", "iadd", "sub", "isub", "addcmul", "addcdiv"}


def elementwise(ctx, node, args, kwargs, ids, ids_kw, out):
    """Same-position channels of all tensor inputs are one channel (add, mul, activations...)."""
    tensors = _tensor_ids(ids) + _tensor_ids(tuple(ids_kw.values()))
    if not tensors:
        return ctx.constant_ids(out)
    result = tensors[0]
    if len(tensors) > 1 and ctx.op_name(node).rsplit(".", 1)[-1].strip("_") in SUMMING:
        for t in tensors:  # a sum's writers form a residual stream; a product (a gate) does not
            ctx.cu.summed.update(i for i in torch.unique(t).tolist() if i != NO_CHANNEL)
    for other in tensors[1:]:
        ctx.cu.union_tensors(result, other)
        a, b = torch.broadcast_tensors(result, other)
        result = torch.where(a != NO_CHANNEL, a, b)
    if isinstance(out, torch.Tensor) and result.ndim < out.ndim:  # broadcast up to the output's rank
        result = result.reshape((1,) * (out.ndim - result.ndim) + tuple(result.shape))
    return compress(result)


def constant(ctx, node, args, kwargs, ids, ids_kw, out):
    """Output does not depend on any channel (zeros_like, shape arithmetic...)."""
    return ctx.constant_ids(out)


# ------------------------------------------------------------------------------------------- data movement
def call_target(node: fx.Node, module: nn.Module | None, args, kwargs):
    """Call what an fx node calls (a module, a Tensor method or a function) on the given arguments."""
    if node.op == "call_module":
        return module(*args, **kwargs)
    if node.op == "call_method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    return node.target(*args, **kwargs)


def _probe(node: fx.Node, module: nn.Module | None, args, kwargs, ids, ids_kw):
    """Run the op on full-size id tensors in place of the activations."""

    def swap(value, id_value):
        if isinstance(value, torch.Tensor) and isinstance(id_value, torch.Tensor):
            return expand_full(id_value, value.shape)
        if isinstance(value, (list, tuple)) and isinstance(id_value, (list, tuple)):
            return type(value)(swap(v, i) for v, i in zip(value, id_value))
        return value

    pargs = tuple(swap(a, i) for a, i in zip(args, ids))
    return call_target(node, module, pargs, {k: swap(v, ids_kw.get(k)) for k, v in kwargs.items()})


def _compress_tree(value):
    if isinstance(value, torch.Tensor):
        return compress(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_compress_tree(v) for v in value)
    return value


def _ids_of(value) -> set[int]:
    if isinstance(value, torch.Tensor):
        return set(torch.unique(value).tolist()) - {NO_CHANNEL}
    if isinstance(value, (list, tuple)):
        return set().union(*(_ids_of(v) for v in value)) if value else set()
    return set()


def movement(ctx, node, args, kwargs, ids, ids_kw, out):
    """Pure data movement with no size hard-coded on a channel axis (permute, flatten, cat...)."""
    return _compress_tree(_probe(node, ctx.module(node), args, kwargs, ids, ids_kw))


def _size_args(node: fx.Node) -> list:
    """A view/reshape's size arguments as the model's code gives them: ints, or the nodes that computed them."""
    sizes = list(node.args[1:]) if node.op == "call_method" else list(node.args[1:2])
    if len(sizes) == 1 and isinstance(sizes[0], (list, tuple)):
        sizes = list(sizes[0])
    if "shape" in node.kwargs or "size" in node.kwargs:
        sizes = list(node.kwargs.get("shape", node.kwargs.get("size")))
    return sizes


def reshape(ctx, node, args, kwargs, ids, ids_kw, out):
    """view/reshape: output dims with constant sizes must keep their size after pruning; a size read from
    another tensor's shape ties the two channel counts (:mod:`edgeprune.graph.shape_reads`)."""
    result = movement(ctx, node, args, kwargs, ids, ids_kw, out)
    sizes = _size_args(node)
    check_borrowed_sizes(ctx, node, sizes, result)
    literal = [isinstance(s, int) and s not in (-1, 1) for s in sizes]  # written as a constant in the code
    if len(literal) != result.ndim:
        return result
    moving = varying_dims(result)
    fixed = [d for d in moving if literal[d]]
    if not fixed:
        return result
    if any(not literal[d] for d in moving):
        # Channels spread over a constant-size dim and a free one (channel shuffle): an index along the
        # free dim is pruned across all of the constant dim at once.
        for d in fixed:
            ctx.cu.union_tensors(result.narrow(d, 0, 1), result)
        return result
    ctx.cu.freeze(result, f"{ctx.where(node)}: reshape hard-codes the channel count {tuple(out.shape)}")
    return result


def subset(ctx, node, args, kwargs, ids, ids_kw, out):
    """getitem/narrow/select/split by constant sizes: fine unless it drops channel positions."""
    if node.target is operator.getitem and not isinstance(args[0], torch.Tensor):
        return ids[0][args[1]] if isinstance(ids[0], (list, tuple)) else None
    if node.target is operator.getitem and _has_tensor_index(args[1]):
        # Advanced indexing (a gather by a tensor of positions, e.g. a relative-position bias table).
        index_ids = ids[1] if isinstance(ids[1], tuple) else (ids[1],)
        for i in index_ids:  # positions used as an index can never be pruned
            if isinstance(i, torch.Tensor):
                ctx.cu.freeze(i, f"{ctx.where(node)}: tensor used as an index")
        if not varying_dims(ids[0]):
            return ids[0].reshape(-1)[:1].reshape((1,) * out.ndim)  # one channel (or none) everywhere
        return mixing_all(ctx, node, args, kwargs, ids[:1], {}, out)
    result = movement(ctx, node, args, kwargs, ids, ids_kw, out)
    if _ids_of(result) != _ids_of(ids[0]):
        ctx.cu.freeze(ids[0], f"{ctx.where(node)}: {ctx.op_name(node)} selects a fixed range of channels")
    return result


def _has_tensor_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, (torch.Tensor, list)) for i in items)


def channel_shuffle(ctx, node, args, kwargs, ids, ids_kw, out):
    """channel_shuffle(x, g): g is fixed, so an index within a shuffle group is pruned in all g groups."""
    module = ctx.module(node)
    groups = module.groups if module is not None else (args[1] if len(args) > 1 else kwargs["groups"])
    x = args[0]
    full = expand_full(ids[0], x.shape).movedim(1, 0)
    rows = full.reshape(groups, x.shape[1] // groups, -1)
    ctx.cu.union_tensors(rows[:1], rows)
    return movement(ctx, node, args, kwargs, ids, ids_kw, out)


def pad(ctx, node, args, kwargs, ids, ids_kw, out):
    """F.pad (or a padding layer): padding a channel axis by a constant amount pins its channel count."""
    result = movement(ctx, node, args, kwargs, ids, ids_kw, out)
    module = ctx.module(node)
    if module is not None:  # nn.ConstantPad2d and friends (their padding is always a tuple)
        widths = list(module.padding)
    else:
        widths = list(args[1]) if len(args) > 1 else list(kwargs["pad"])
    ndim = ids[0].ndim
    padded_dims = {ndim - 1 - i // 2 for i, w in enumerate(widths) if w}
    if padded_dims & set(varying_dims(ids[0])):
        ctx.cu.freeze(
            ids[0],
            f"{ctx.where(node)}: F.pad on the channel axis hard-codes channel counts"
            " (use edgeprune.models.ChannelRemap to keep it prunable)",
        )
    return result


# ----------------------------------------------------------------------------------------- channelwise ops
def channelwise(ctx, node, args, kwargs, ids, ids_kw, out, dim: int = 1):
    """Channels on ``dim`` pass through unchanged; other dims are resampled (pooling, interpolate)."""
    x = args[0]
    if out.ndim != x.ndim or out.shape[dim] != x.shape[dim]:
        return ctx.unknown(node, ids, ids_kw, out)
    reps = position_reps(ctx.cu, ids[0], dim, x.shape[dim])
    return along(reps, dim, out.ndim)


def batch_norm(ctx, node, args, kwargs, ids, ids_kw, out):
    reps = position_reps(ctx.cu, ids[0], 1, args[0].shape[1])
    ctx.attach(reps, NORM, node.target)
    return along(reps, 1, out.ndim)


def _reduced_dims(node, args, kwargs, ndim) -> list[int] | None:
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    if dims is None:
        return None
    dims = [dims] if isinstance(dims, int) else list(dims)
    return sorted(d % ndim for d in dims)


def join_fibers(ctx, x_ids: torch.Tensor, dims: list[int]) -> torch.Tensor | None:
    """Values combined along ``dims`` that stack copies of one channel axis (SKNet's paths, ResNeSt's radix
    splits, attention heads): where every slice across ``dims`` holds distinct channels along the other dims,
    channel i of each slice goes with channel i of the others, as in a sum of tensors, and pruning removes whole
    fibers. Returns slice 0's ids (the joined channels), or None where the op mixes the channel axis itself."""
    varying = set(varying_dims(x_ids))
    mixed = sorted(set(dims) & varying)
    if not mixed or not varying - set(mixed) or bool((x_ids == NO_CHANNEL).any()):
        return None
    first = x_ids
    for d in mixed:
        first = first.narrow(d, 0, 1)
    if torch.unique(first).numel() != first.numel():
        return None  # repeated channels along the other dims (a class token's row): not a channel axis
    for d in mixed:
        ctx.cu.union_tensors(x_ids.narrow(d, 0, 1), x_ids)
    return first


def reduction(ctx, node, args, kwargs, ids, ids_kw, out):
    """mean/sum/amax over some dims: fine over space and over stacked copies of the channels
    (:func:`join_fibers`), but it mixes channels over the channel axis."""
    x_ids = ids[0]
    dims = _reduced_dims(node, args, kwargs, x_ids.ndim)
    if dims is None:
        return mixing_all(ctx, node, args, kwargs, ids, ids_kw, out)
    if set(dims) & set(varying_dims(x_ids)):
        joined = join_fibers(ctx, x_ids, dims)
        if joined is None:
            return mixing_all(ctx, node, args, kwargs, ids, ids_kw, out)
        if ctx.op_name(node).rsplit(".", 1)[-1] in ("sum", "mean"):  # a sum of the slices, as elementwise adds are
            ctx.cu.summed.update(torch.unique(x_ids).tolist())
        x_ids = joined
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    return x_ids if keepdim else x_ids.reshape([s for d, s in enumerate(x_ids.shape) if d not in dims])


def norm_reduction(ctx, node, args, kwargs, ids, ids_kw, out):
    """A vector norm (``torch.norm``, ``Tensor.norm``, ``torch.linalg.vector_norm``: input, order, dims, keepdim)
    reduces as a sum does: over space it keeps the channels, over the channel axis it mixes them."""
    dim = args[2] if len(args) > 2 else kwargs.get("dim")
    keepdim = args[3] if len(args) > 3 else kwargs.get("keepdim", False)
    return reduction(ctx, node, (args[0], dim, keepdim), {}, ids[:1], {}, out)


def mixing_along(dims_of: Callable[[fx.Node, tuple, dict, nn.Module | None], list[int]], what: str,
                 fibers: bool = False) -> Rule:  # fmt: skip
    """An op that mixes values across some dims: channels on those dims are frozen, others pass. ``fibers``: an
    op without weights that may mix stacked copies of the channels (:func:`join_fibers`)."""

    def rule(ctx, node, args, kwargs, ids, ids_kw, out):
        x_ids = ids[0]
        dims = {d % x_ids.ndim for d in dims_of(node, args, kwargs, ctx.module(node))}
        if dims & set(varying_dims(x_ids)) and not (fibers and join_fibers(ctx, x_ids, sorted(dims)) is not None):
            ctx.cu.freeze(x_ids, f"{ctx.where(node)}: {what} mixes values across channels")
        for other in _tensor_ids(ids[1:]) + _tensor_ids(tuple(ids_kw.values())):
            # a functional norm's weight and bias: sized by the mixed dims, which keep their size
            ctx.cu.freeze(other, f"{ctx.where(node)}: {what} weight over the dims it mixes")
        return x_ids

    return rule


def mixing_all(ctx, node, args, kwargs, ids, ids_kw, out):
    """Opaque or mixing op (matmul, attention): freeze what goes in, the output is a frozen channel."""
    return freeze_through(ctx, ids, ids_kw, out, f"{ctx.where(node)}: {ctx.op_name(node)} mixes channels")


def no_surgery(ctx, node, args, kwargs, ids, ids_kw, out):
    """A layer with weights that shrink cannot resize (a grouped transposed conv): its channels keep their width."""
    reason = f"{ctx.where(node)}: {ctx.op_name(node)} has no channel surgery in edgeprune"
    return freeze_through(ctx, ids, ids_kw, out, reason)


def freeze_through(ctx, ids, ids_kw, out, reason: str):
    """Freeze every channel going into an op and give its output one frozen channel."""
    for i in _tensor_ids(ids) + _tensor_ids(tuple(ids_kw.values())):
        ctx.cu.freeze(i, reason)
    return ctx.frozen_ids(out, reason)


# ------------------------------------------------------------------------------------------------ modules
def conv(ctx, node, args, kwargs, ids, ids_kw, out):
    m: nn.Conv2d = ctx.module(node)
    if m.transposed and m.groups > 1:  # a grouped transposed conv: no surgery for it
        return no_surgery(ctx, node, args, kwargs, ids, ids_kw, out)
    reps = ctx.consumer_reps(ids[0], 1, m.in_channels, node.target)
    ctx.attach(reps, CONV_IN, node.target)
    out_ids = ctx.new_space(m.out_channels)
    ctx.attach(out_ids, CONV_OUT, node.target)
    if m.groups > 1:
        # A conv group's inputs and outputs go together: pruning removes whole conv groups.
        outs, ins = out_ids.view(m.groups, -1), reps.view(m.groups, -1)
        anchor = outs[:, :1]  # first output channel of each conv group
        ctx.cu.union_tensors(anchor, outs)
        ctx.cu.union_tensors(anchor, ins)
    _conv_extras(ctx, node, m, reps, out_ids)
    return along(out_ids, 1, out.ndim)


# Convs that standardize their weight over (input channels x kernel) per output channel (timm's, by class
# name so the graph does not import timm): removing an input changes every output, so inputs are frozen.
WEIGHT_STANDARDIZED = {"StdConv2d", "StdConv2dSame", "ScaledStdConv2d", "ScaledStdConv2dSame"}


def _conv_extras(ctx, node, m: nn.Module, reps: torch.Tensor, out_ids: torch.Tensor) -> None:
    """What a conv subclass adds: per-output-channel tensors (a learned gain) go with their channel."""
    for name, value in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
        if name in ("weight", "bias") or value is None:
            continue
        if value.numel() == m.out_channels and value.shape[0] == m.out_channels:
            ctx.attach(out_ids, PARAM, f"{node.target}.{name}", dim=0)
        else:
            ctx.cu.freeze(out_ids, f"{node.target}: {type(m).__name__}.{name} {tuple(value.shape)} is not per channel")
    if type(m).__name__ in WEIGHT_STANDARDIZED:
        ctx.cu.freeze(reps, f"{node.target}: {type(m).__name__} standardizes its weight over its input channels")


def linear(ctx, node, args, kwargs, ids, ids_kw, out):
    m: nn.Linear = ctx.module(node)
    reps = ctx.consumer_reps(ids[0], -1, m.in_features, node.target)
    ctx.attach(reps, LINEAR_IN, node.target)
    out_ids = ctx.new_space(m.out_features)
    ctx.attach(out_ids, LINEAR_OUT, node.target)
    return along(out_ids, -1, out.ndim)


def remap(ctx, node, args, kwargs, ids, ids_kw, out):
    """ChannelRemap: an index map between two groups, not a merge: both sides prune independently."""
    m: ChannelRemap = ctx.module(node)
    reps = ctx.consumer_reps(ids[0], 1, m.in_channels, node.target)
    ctx.attach(reps, REMAP_IN, node.target)
    out_ids = ctx.new_space(m.out_channels)
    ctx.attach(out_ids, REMAP_OUT, node.target)
    return along(out_ids, 1, out.ndim)


def branch_constant(ctx, node, args, kwargs, ids, ids_kw, out):
    """A removed residual branch's constant: its channels are new, and its value is sliced with them."""
    m: BranchConstant = ctx.module(node)
    channels = ctx.new_space(m.channels)
    ctx.attach(channels, PARAM, f"{node.target}.value", dim=0)
    return along(channels, 1, out.ndim)


def _dim_arg(index: int, default: int):
    def dims(node, args, kwargs, module):
        if module is not None:
            return [module.dim if module.dim is not None else default]
        value = args[index] if len(args) > index else kwargs.get("dim", default)
        return [default if value is None else value]

    return dims


def _layer_norm_dims(node, args, kwargs, module):
    if module is not None:
        shape = module.normalized_shape
    else:
        shape = args[1] if len(args) > 1 else kwargs["normalized_shape"]
    return list(range(-len(shape), 0))


def _channel_dim(node, args, kwargs, module):
    return [1]
