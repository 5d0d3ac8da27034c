"""Trace a model once and derive its channel groups.

The model is traced with ``torch.fx`` (torch.nn layers stay leaves) and interpreted node by node on
meta tensors (fake tensors as a fallback for ops without meta kernels), so no real compute runs: every
node gets its output shape and an id tensor (see :mod:`edgeprune.graph.ids`) that the rules in
:mod:`edgeprune.graph.rules` propagate.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.func import functional_call

from edgeprune.graph import optable, rules
from edgeprune.graph.assemble import assemble_groups
from edgeprune.graph.assignment import assign
from edgeprune.graph.branch_values import BRANCH, traced_values, values_used
from edgeprune.graph.branches import find_branches, removable_groups
from edgeprune.graph.errors import GraphBuildError, UnsupportedOpError
from edgeprune.graph.fxtrace import trace_around, trace_model
from edgeprune.graph.generic import pointwise_rule
from edgeprune.graph.groups import PARAM, ChannelGraph
from edgeprune.graph.ids import NO_CHANNEL, ChannelUnion, along, position_reps
from edgeprune.graph.shape_reads import freeze_branch_sizes, note_shape_read
from edgeprune.graph.splits import SizeSource, find_size_sources, size_attrs

FX_CONSTANT = "_tensor_constant"  # what fx names a tensor forward() creates, stored on the traced root


class TraceContext:
    """State shared by the rules while one model is interpreted."""

    def __init__(self, model: nn.Module, freeze_unknown: bool, size_sources: dict | None = None,
                 opaque: frozenset[str] = frozenset()) -> None:  # fmt: skip
        self.model = model
        self.opaque = opaque  # submodules fx could not follow, kept whole (fxtrace.trace_around)
        self.size_sources: dict[str, list[SizeSource | None]] = size_sources or {}  # literal split sizes
        self.size_parts: dict[SizeSource, torch.Tensor] = {}  # per source: the ids of the parts it sizes
        self.modules = dict(model.named_modules())
        self.freeze_unknown = freeze_unknown
        self.cu = ChannelUnion()
        self.shapes_read: dict[fx.Node, torch.Tensor] = {}  # x.shape -> x's ids (graph/shape_reads.py)
        self.sizes_read: dict[fx.Node, tuple[torch.Tensor, int]] = {}  # x.shape[i] -> (x's ids, i)
        self.blocks: list[tuple[str, str, int]] = []
        self.attached: list[np.ndarray] = []  # per block: the channel of each slice
        self.block_of: dict[tuple[str, str, int], int] = {}
        self.n_spaces = 0

    # -- naming
    def module(self, node: fx.Node) -> nn.Module | None:
        return self.modules[node.target] if node.op == "call_module" else None

    def where(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return node.target
        stack = node.meta.get("nn_module_stack") or {}
        path = next(reversed(stack.values()), ("", None))[0] if stack else ""
        return f"{path or '<top level>'} ({node.name})"

    def op_name(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return type(self.module(node)).__name__
        if node.op == "call_method":
            return f"Tensor.{node.target}"
        target = node.target
        return f"{getattr(target, '__module__', '') or ''}.{getattr(target, '__name__', str(target))}".lstrip(".")

    # -- ids
    def new_space(self, count: int) -> torch.Tensor:
        self.n_spaces += 1
        return self.cu.new_ids(count, self.n_spaces - 1)

    def attach(self, ids: torch.Tensor, kind: str, path: str, dim: int = 0) -> None:
        """Record that slice ``i`` of (kind, path, dim) belongs to channel ``ids[i]``.

        A module called more than once (shared weights) attaches again: each slice is one weight, so the
        channels it meets in every call are one channel."""
        block = (kind, path, dim)
        if block in self.block_of:
            self.cu.union_tensors(torch.from_numpy(self.attached[self.block_of[block]]), ids.reshape(-1))
            return
        self.block_of[block] = len(self.blocks)
        self.blocks.append(block)
        self.attached.append(ids.reshape(-1).numpy().copy())

    def consumer_reps(self, ids: torch.Tensor, dim: int, size: int, path: str) -> torch.Tensor:
        """One channel per input index of a weighted consumer (module ``path``).

        An input that no channel produces (a constant, such as a positional encoding computed from the
        shape) gets a frozen channel of its own: whatever makes it keeps its width after pruning."""
        reps = position_reps(self.cu, ids, dim, size)
        missing = reps == NO_CHANNEL
        if bool(missing.any()):
            reps[missing] = self.new_space(int(missing.sum()))
            self.cu.freeze(reps[missing], f"{path}: input channels that no layer produces (a constant)")
        return reps

    def constant_ids(self, out):
        if isinstance(out, torch.Tensor):
            return torch.zeros((1,) * out.ndim, dtype=torch.long)
        if isinstance(out, (list, tuple)):
            return type(out)(self.constant_ids(o) for o in out)
        return None

    def frozen_ids(self, out, reason: str):
        if isinstance(out, torch.Tensor):
            channel = self.new_space(1)
            self.cu.freeze(channel, reason)
            return channel.reshape((1,) * out.ndim)
        if isinstance(out, (list, tuple)):
            return type(out)(self.frozen_ids(o, reason) for o in out)
        return None

    def unknown(self, node: fx.Node, ids, ids_kw, out):
        if not self.freeze_unknown:
            raise UnsupportedOpError(self.op_name(node), self.where(node))
        reason = f"{self.where(node)}: unsupported op {self.op_name(node)} (frozen by --freeze-unknown)"
        if node.op == "call_module" and node.target in self.opaque:
            reason = (f"{node.target} ({self.op_name(node)}) is kept whole: torch.fx cannot trace its code "
                      "(frozen by --freeze-unknown)")  # fmt: skip
        return rules.freeze_through(self, ids, ids_kw, out, reason)

    # -- parameters read directly in forward (layer scale, class token, positional embedding)
    def param_ids(self, name: str, value: torch.Tensor):
        wide = [d for d, s in enumerate(value.shape) if s > 1]
        if not wide or not value.is_floating_point():  # integer tensors are indices, not channels
            return self.constant_ids(value)
        if len(wide) == 1:
            channels = self.new_space(value.shape[wide[0]])
            self.attach(channels, PARAM, name, dim=wide[0])
            return along(channels, wide[0], value.ndim)
        return self.frozen_ids(value, f"parameter {name} {tuple(value.shape)} is used directly in forward")


def _rule_for(ctx: TraceContext, node: fx.Node):
    if node.op == "call_module":
        return optable.module_rule(ctx.module(node))
    if node.op == "call_method":
        return optable.METHOD_RULES.get(node.target) or pointwise_rule(node)
    return optable.FUNCTION_RULES.get(node.target) or pointwise_rule(node)


def _has_channel(tree) -> bool:
    if isinstance(tree, torch.Tensor):
        return bool((tree != NO_CHANNEL).any())
    if isinstance(tree, (list, tuple)):
        return any(_has_channel(t) for t in tree)
    if isinstance(tree, dict):
        return any(_has_channel(t) for t in tree.values())
    return False


def _has_ids(tree) -> bool:
    if isinstance(tree, torch.Tensor):
        return True
    if isinstance(tree, (list, tuple)):
        return any(_has_ids(t) for t in tree)
    if isinstance(tree, dict):
        return any(_has_ids(t) for t in tree.values())
    return False


def _fetch_attr(model: nn.Module, target: str):
    obj = model
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


class _MetaRunner:
    """Computes node outputs on the meta device: shapes only, no arithmetic, parameters not copied."""

    def __init__(self) -> None:
        self.mode = contextlib.nullcontext()

    def input(self, example: torch.Tensor) -> torch.Tensor:
        return example.to("meta")

    def attr(self, value):
        return value.to("meta") if isinstance(value, torch.Tensor) else value

    def call_module(self, module: nn.Module, args, kwargs):
        if isinstance(module, optable.SHAPE_PRESERVING_MODULES):
            return args[0]
        x = args[0]
        if isinstance(module, nn.Linear):
            return x.new_empty((*x.shape[:-1], module.out_features))
        if type(module) is nn.Conv2d and module.padding_mode == "zeros":
            w = module.weight.to("meta")
            return F.conv2d(x, w, None, module.stride, module.padding, module.dilation, module.groups)
        state = {k: v.to("meta") for k, v in [*module.named_parameters(), *module.named_buffers()]}
        return functional_call(module, state, tuple(args), dict(kwargs)) if state else module(*args, **kwargs)


class _FakeRunner(_MetaRunner):
    """Fallback for ops without meta kernels: fake tensors (slower, but broader coverage)."""

    def __init__(self) -> None:
        self.mode = FakeTensorMode(allow_non_fake_inputs=True)

    def input(self, example: torch.Tensor) -> torch.Tensor:
        return self.mode.from_tensor(example)

    def attr(self, value):
        return value

    def call_module(self, module: nn.Module, args, kwargs):
        return module(*args, **kwargs)


def interpret(ctx: TraceContext, graph: fx.Graph, example: torch.Tensor, fake: bool = False) -> None:
    """Run every node for shapes only, propagating id tensors through the rules."""
    runner = _FakeRunner() if fake else _MetaRunner()
    values: dict[fx.Node, object] = {}
    ids: dict[fx.Node, object] = {}
    placeholders = 0
    for node in graph.nodes:
        if node.op == "placeholder":
            if placeholders == 0:
                values[node] = runner.input(example)
                ids[node] = along(ctx.new_space(example.shape[1]), 1, example.ndim)
                ctx.cu.freeze(ids[node], "model input")
            else:
                values[node] = node.args[0] if node.args else None
                ids[node] = None
            placeholders += 1
            continue
        if node.op == "get_attr":
            value = _fetch_attr(ctx.model, node.target)
            values[node] = runner.attr(value)
            if not isinstance(value, torch.Tensor):
                ids[node] = None
            elif node.target.startswith(FX_CONSTANT):  # a tensor forward() built from constants alone
                ids[node] = ctx.constant_ids(value)
            else:
                ids[node] = ctx.param_ids(node.target, value)
            continue
        if node.op == "output":
            for out_ids in tree_leaves(fx.node.map_arg(node.args[0], lambda n: ids[n])):
                if isinstance(out_ids, torch.Tensor):
                    ctx.cu.freeze(out_ids, "model output")
            continue
        args = fx.node.map_arg(node.args, lambda n: values[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: values[n])
        try:
            with runner.mode:
                out = _call(ctx, runner, node, args, kwargs)
        except Exception as exc:
            if not fake:
                raise _NeedsFake from exc
            seq = " (a batch of sequences: a factory's input_size of two values is (channels, length); an " \
                "image model declares (channels, height, width))" if example.dim() == 3 else ""  # fmt: skip
            raise GraphBuildError(f"{ctx.where(node)}: {ctx.op_name(node)} failed while tracing at input "
                                  f"{tuple(example.shape)}{seq}: {exc}") from exc
        values[node] = out
        a_ids = fx.node.map_arg(node.args, lambda n: ids[n])
        k_ids = fx.node.map_arg(node.kwargs, lambda n: ids[n])
        ids[node] = _node_ids(ctx, node, args, kwargs, a_ids, k_ids, out)
        if BRANCH in node.meta:
            freeze_branch_sizes(ctx, node, values)
        for used in node.all_input_nodes:  # free id tensors nobody needs any more
            if all(u in values for u in used.users):
                ids[used] = None if isinstance(ids.get(used), torch.Tensor) else ids.get(used)


def _node_ids(ctx, node, args, kwargs, a_ids, k_ids, out):
    note_shape_read(ctx, node, a_ids)
    if node.op == "call_function" and node.target is operator.setitem and _has_channel(a_ids):
        return assign(ctx, node, tuple(args), dict(kwargs), tuple(a_ids), dict(k_ids), out)
    if not _has_ids(out):
        return None
    if not _has_ids(a_ids) and not _has_ids(k_ids):
        return ctx.constant_ids(out)
    if node.op != "call_module" and not _has_channel(a_ids) and not _has_channel(k_ids):
        return ctx.constant_ids(out)  # a function of constants only (a mask built from a shape): no channels
    if node.op == "call_method" and node.target in optable.SHAPE_METHODS:
        return None
    rule = _rule_for(ctx, node)
    if rule is None:
        return ctx.unknown(node, a_ids, k_ids, out)
    return rule(ctx, node, tuple(args), dict(kwargs), tuple(a_ids), dict(k_ids), out)


class _NeedsFake(Exception):
    """An op failed on meta tensors; the build is redone with fake tensors."""


def _call(ctx: TraceContext, runner: _MetaRunner, node: fx.Node, args, kwargs):
    if node.op == "call_module" and node.target in ctx.opaque and type(runner) is _MetaRunner:
        return _run_real(ctx.module(node), args, kwargs)
    if node.op == "call_module":
        return runner.call_module(ctx.module(node), args, kwargs)
    return rules.call_target(node, None, args, kwargs)


def _run_real(module: nn.Module, args, kwargs):
    """A block kept whole, run on random real inputs of the meta ones' shapes: its code is what fx could not
    follow (a branch on tensor values), so shapes alone may not run it. Outputs return to the meta device."""
    gen = torch.Generator().manual_seed(0)

    def real(t):
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            return torch.randn(t.shape, generator=gen, dtype=t.dtype)
        return torch.zeros(t.shape, dtype=t.dtype) if isinstance(t, torch.Tensor) else t

    with torch.no_grad():
        out = module(*torch.utils._pytree.tree_map(real, args), **torch.utils._pytree.tree_map(real, kwargs))
    return torch.utils._pytree.tree_map(lambda t: t.to("meta") if isinstance(t, torch.Tensor) else t, out)


def tree_leaves(tree) -> Iterator:
    """The leaves of nested lists, tuples and dicts, in order: a model's output tensors, however returned."""
    if isinstance(tree, (list, tuple)):
        for t in tree:
            yield from tree_leaves(t)
    elif isinstance(tree, dict):
        for t in tree.values():
            yield from tree_leaves(t)
    else:
        yield tree


def tree_tensors(tree) -> list[torch.Tensor]:
    """Every tensor in nested lists, tuples and dicts (a model's outputs, a state dict), in order."""
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]


def build_graph(
    model: nn.Module,
    example: torch.Tensor,
    *,
    model_name: str | None = None,
    model_kwargs: dict | None = None,
    freeze_unknown: bool = False,
) -> ChannelGraph:
    """Trace ``model`` once on ``example`` and return its channel groups.

    Args:
        model: the network; traced in eval mode (its mode is restored afterwards).
        example: an input batch (only its shape and dtype matter).
        model_name: registry name recorded in the graph (used to rebuild pruned models).
        model_kwargs: the keyword arguments the model was built with (recorded likewise).
        freeze_unknown: freeze the channels around ops the graph does not understand instead of raising, and
            keep whole (one frozen node) each submodule torch.fx cannot trace.

    Raises:
        UntraceableError: torch.fx cannot trace the model (a :class:`GraphBuildError`); with ``freeze_unknown``
            only where the model's own forward stops it.
        GraphBuildError: an op fails on the example's shapes.
        UnsupportedOpError: an op with no rule, unless ``freeze_unknown``.
    """
    was_training = model.training
    model.eval()
    attrs_before = set(vars(model))
    try:
        graph, opaque = trace_around(model, freeze_unknown, example)
        limit = 2 * len(graph.nodes) + 16  # a retrace with patched sizes has the same nodes, or it is not used
        used = values_used(graph)  # patched sizes may not run: the retrace takes the same branches
        sources = find_size_sources(model, graph, lambda m: trace_model(m, limit, opaque, replay=used))
        ctx = TraceContext(model, freeze_unknown, sources, opaque)
        try:
            interpret(ctx, graph, example)
        except _NeedsFake:
            ctx = TraceContext(model, freeze_unknown, sources, opaque)
            interpret(ctx, graph, example, fake=True)
    finally:
        model.train(was_training)
        for added in set(vars(model)) - attrs_before:  # fx stores tensor constants on the traced root
            if added.startswith(FX_CONSTANT):
                delattr(model, added)
    groups, unit_at = assemble_groups(ctx)
    branches = removable_groups(groups, find_branches(graph, model))
    shapes = {k: tuple(v.shape) for k, v in [*model.named_parameters(), *model.named_buffers()]}
    name = model_name or type(model).__name__
    sizes = size_attrs(ctx.size_parts, ctx.cu.roots(), unit_at)
    return ChannelGraph(name, tuple(example.shape), groups, shapes, dict(model_kwargs or {}), branches, sizes,
                        traced_values(graph))  # fmt: skip
