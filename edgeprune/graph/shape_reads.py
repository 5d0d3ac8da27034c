"""Sizes a model reads from one tensor's shape and gives to a reshape of another.

``B, C, H, W = x.shape`` ... ``y.reshape(B, C, H, W)`` runs only while ``y`` has as many channels as ``x``. Where
``y``'s channels are ``x``'s own (an attention block that flattens and restores its input) both prune alike;
where they are not (timm's LambdaLayer and FastViT's attention restore their *input's* count on an output
the heads' sizes fix), pruning either breaks the reshape, so both are frozen. The interpreter notes each shape
read (:func:`note_shape_read`); the reshape rule checks its sizes against them (:func:`check_borrowed_sizes`).
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

import torch
import torch.fx as fx

from edgeprune.graph.branch_values import BRANCH

if TYPE_CHECKING:
    from edgeprune.graph.trace import TraceContext


def _is_shape_read(node: fx.Node) -> bool:
    """``x.shape`` or ``x.size()`` (the whole shape)."""
    if node.op == "call_function" and node.target is getattr:
        return len(node.args) > 1 and node.args[1] == "shape"
    return node.op == "call_method" and node.target == "size" and len(node.args) == 1 and not node.kwargs


def note_shape_read(ctx: TraceContext, node: fx.Node, a_ids) -> None:
    """Remember which tensor (its id tensor) and dim a node's size comes from: ``x.size(i)``, or an item of
    ``x.shape`` / ``x.size()``."""
    if _is_shape_read(node) and isinstance(a_ids[0], torch.Tensor):
        ctx.shapes_read[node] = a_ids[0]
    elif node.op == "call_method" and node.target == "size" and len(node.args) == 2:
        if isinstance(a_ids[0], torch.Tensor) and isinstance(node.args[1], int):
            ctx.sizes_read[node] = (a_ids[0], node.args[1])
    elif node.op == "call_function" and node.target is operator.getitem and node.args[0] in ctx.shapes_read:
        if isinstance(node.args[1], int):
            ctx.sizes_read[node] = (ctx.shapes_read[node.args[0]], node.args[1])


def _channels_along(ids: torch.Tensor, dim: int) -> torch.Tensor | None:
    """The channel ids along ``dim`` of a compressed id tensor; None where it holds one channel there."""
    dim = dim % ids.ndim
    if ids.shape[dim] == 1:
        return None
    return ids.movedim(dim, 0).reshape(ids.shape[dim], -1)[:, 0]


def check_borrowed_sizes(ctx: TraceContext, node: fx.Node, sizes: list, result: torch.Tensor) -> None:
    """Freeze a reshape's output and the tensor whose shape gave one of its sizes, unless the two hold the
    same channels along those dims (``sizes``: the reshape's size arguments, nodes where computed)."""
    if len(sizes) != result.ndim:
        return
    for d, size in enumerate(sizes):
        read = ctx.sizes_read.get(size) if isinstance(size, fx.Node) else None
        if read is None:
            continue
        source, dim = read
        theirs, ours = _channels_along(source, dim), _channels_along(result, d)
        if theirs is None and ours is None:
            continue  # a batch or spatial size given to a dim without channels
        if theirs is not None and ours is not None and theirs.shape == ours.shape:
            if all(ctx.cu.find(int(a)) == ctx.cu.find(int(b)) for a, b in zip(theirs, ours)):
                continue  # the tensor's own channels: both prune alike
        reason = (f"{ctx.where(node)}: reshape takes its size along dim {d} from another tensor's shape "
                  f"({size.name}), so their channel counts must stay equal")  # fmt: skip
        ctx.cu.freeze(source, reason)
        ctx.cu.freeze(result, reason)


def freeze_branch_sizes(ctx: TraceContext, node: fx.Node, values: dict) -> None:
    """A condition the trace decided at the traced input (graph/branch_values.py) that reads a channel count:
    pruning would change the count and so the branch the model takes, so those channels stay as they are. Walks
    back from the condition through sizes and other non-tensor values to the shapes they were read from."""
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n in seen or isinstance(values.get(n), torch.Tensor):
            continue
        seen.add(n)
        if n in ctx.sizes_read or n in ctx.shapes_read:
            ids, dims = ctx.sizes_read[n] if n in ctx.sizes_read else (ctx.shapes_read[n], None)
            for dim in range(ids.ndim) if dims is None else [dims]:
                channels = _channels_along(ids, dim)
                if channels is not None:
                    reason = f"{ctx.where(node)}: the model branches on this channel count ({node.meta[BRANCH][1]})"
                    ctx.cu.freeze(channels, reason)
            continue
        stack.extend(n.all_input_nodes)
