"""Rules for ops that cut a tensor into parts (split, chunk, tensor_split, unbind), and the module
attributes that literal split sizes come from.

``torch.split(x, self.width, 1)`` reaches the traced graph as ``split(x, 14)``: the width is a literal.
After pruning, the parts are narrower, so the pruned model only runs if ``self.width`` is rewritten. Which
attribute a literal came from is found by tracing a second time with candidate attributes (ints equal to
a split size, or lists of them, on the module that calls the split) set to unique sentinel values: a
split size that turns into a sentinel comes from that attribute. A candidate that changes anything else
in the graph is not used, so rewriting it cannot alter another op. Sizes with no such source are
constants, and :func:`split` freezes their parts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
import torch.fx as fx
import torch.nn as nn

from edgeprune.graph.groups import SizeAttr
from edgeprune.graph.ids import expand_full, varying_dims
from edgeprune.graph.rules import movement

SENTINEL_BASE = 1_000_003  # far above any channel count, so a sentinel never equals a real size


class SizeSource(NamedTuple):
    """Module attribute that sets a split size: ``path.attr`` (element ``index`` of a list attribute), divided
    by ``scale`` (a CSP block splits ``self.expand_chs // 2``)."""

    path: str
    attr: str
    index: int | None = None
    scale: int = 1


MAX_SCALE = 8  # an int attribute up to this multiple of a split size may be its source


def split_spec(node: fx.Node):
    """The split sizes of a ``torch.split`` / ``Tensor.split`` node as written (an int, a list, or fx nodes);
    None for any other node."""
    is_split = (node.op == "call_function" and node.target is torch.split) or (
        node.op == "call_method" and node.target == "split"
    )
    if not is_split:
        return None
    if len(node.args) > 1:
        return node.args[1]
    return node.kwargs.get("split_size_or_sections", node.kwargs.get("split_size"))


def is_literal(spec) -> bool:
    """Whether split sizes are constants in the graph (not computed from a tensor's shape while tracing)."""
    if isinstance(spec, (list, tuple)):
        return all(isinstance(s, int) for s in spec)
    return isinstance(spec, int)


def owner_path(node: fx.Node) -> str | None:
    """Qualified name of the innermost module whose forward contains ``node`` (None at the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else None


def _candidates(module: nn.Module, sizes: set[int]) -> dict[str, tuple[object, int]]:
    """Attributes of ``module`` that could hold one of ``sizes``, with the multiple they hold: ints (or a small
    multiple of a size), or lists/tuples of sizes."""
    out = {}
    for attr, value in vars(module).items():
        if attr.startswith("_") or isinstance(value, bool):
            continue
        if isinstance(value, int) and value > 0:
            scale = next((k for k in range(1, MAX_SCALE + 1) if value % k == 0 and value // k in sizes), None)
            if scale is not None:
                out[attr] = (value, scale)
        elif isinstance(value, (list, tuple)) and value and all(type(v) is int and v in sizes for v in value):
            out[attr] = (value, 1)
    return out


@contextlib.contextmanager
def _patched(model: nn.Module, values: dict[tuple[str, str], object]) -> Iterator[None]:
    """Set module attributes for the duration of the block."""
    old = {}
    try:
        for (path, attr), value in values.items():
            module = model.get_submodule(path) if path else model
            old[(path, attr)] = getattr(module, attr)
            setattr(module, attr, value)
        yield
    finally:
        for (path, attr), value in old.items():
            setattr(model.get_submodule(path) if path else model, attr, value)


def _sentinels(cands: dict[tuple[str, str], tuple[object, int]]) -> tuple[dict, dict[int, SizeSource]]:
    """A sentinel value for every candidate (element-wise for lists), and sentinel -> source. A candidate that
    holds ``scale`` times a size gets ``scale`` times a sentinel, so the size it sets reads as the sentinel."""
    values, back = {}, {}
    counter = iter(range(SENTINEL_BASE, SENTINEL_BASE + 10**6))
    for (path, attr), (value, scale) in cands.items():
        if isinstance(value, int):
            s = next(counter)
            values[(path, attr)], back[s] = s * scale, SizeSource(path, attr, None, scale)
        else:
            items = [next(counter) for _ in value]
            values[(path, attr)] = type(value)(items)
            back.update({s: SizeSource(path, attr, i) for i, s in enumerate(items)})
    return values, back


def _leaves(node: fx.Node) -> list:
    flat: list = []
    fx.node.map_aggregate((node.args, node.kwargs), lambda v: flat.append(v.name if isinstance(v, fx.Node) else v))
    return flat


def _explain(old: fx.Graph, new: fx.Graph, back: dict[int, SizeSource], sites: dict[str, object]):
    """Per split site, the source of each size; None when the two graphs differ in any other way."""
    old_nodes, new_nodes = list(old.nodes), list(new.nodes)
    if len(old_nodes) != len(new_nodes):
        return None
    found: dict[str, list[SizeSource | None]] = {}
    for a, b in zip(old_nodes, new_nodes):
        if (a.name, a.op, a.target) != (b.name, b.op, b.target):
            return None
        if a.name in sites:
            spec_a, spec_b = sites[a.name], split_spec(b)
            items_a = list(spec_a) if isinstance(spec_a, (list, tuple)) else [spec_a]
            items_b = list(spec_b) if isinstance(spec_b, (list, tuple)) else [spec_b]
            if len(items_a) != len(items_b):
                return None
            found[a.name] = [back.get(y) if x != y else None for x, y in zip(items_a, items_b)]
            if any(x != y and y not in back for x, y in zip(items_a, items_b)):
                return None
            continue
        if _leaves(a) != _leaves(b):
            return None
    return found


def find_size_sources(
    model: nn.Module, graph: fx.Graph, retrace: Callable[[nn.Module], fx.Graph]
) -> dict[str, list[SizeSource | None]]:
    """Node name -> for each literal split size of that node, the attribute it comes from (None: a constant).

    ``retrace`` traces ``model`` again (with the attributes patched); it is called once, or once per
    candidate when patching all at once changes the graph beyond the split sizes.
    """
    nodes = [n for n in graph.nodes if (spec := split_spec(n)) is not None and is_literal(spec)]
    sites = {n.name: split_spec(n) for n in nodes}
    cands: dict[tuple[str, str], tuple[object, int]] = {}
    for node in nodes:
        spec, path = sites[node.name], owner_path(node) or ""
        sizes = set(spec) if isinstance(spec, (list, tuple)) else {spec}
        for attr, value in _candidates(model.get_submodule(path) if path else model, sizes).items():
            cands[(path, attr)] = value
    none: dict[str, list[SizeSource | None]] = {
        n: [None] * (len(s) if isinstance(s, (list, tuple)) else 1) for n, s in sites.items()
    }
    if not cands:
        return none
    found = _try(model, graph, retrace, cands, sites)
    if found is not None:
        return {**none, **found}
    merged = dict(none)  # one candidate at a time: keep the ones that change nothing else
    for key, value in cands.items():
        one = _try(model, graph, retrace, {key: value}, sites)
        for name, sources in (one or {}).items():
            merged[name] = [m if m is not None else s for m, s in zip(merged[name], sources)]
    return merged


def _try(model, graph, retrace, cands, sites):
    values, back = _sentinels(cands)
    try:
        with _patched(model, values):
            new = retrace(model)
    except Exception:  # a sentinel broke the model's own code: this candidate is not a plain size
        return None
    return _explain(graph, new, back, sites)


def size_attrs(parts: dict[SizeSource, torch.Tensor], roots: list[int], unit_at: dict[int, tuple[int, int]]):
    """The graph's record of each rewritable width: per position of the part it sizes, the unit there."""
    out = []
    for source, ids in parts.items():
        positions = tuple(unit_at.get(roots[i]) if i else None for i in ids.reshape(-1).tolist())
        out.append(SizeAttr(source.path, source.attr, source.index, positions, source.scale))
    return out


# ------------------------------------------------------------------------------------------------ rules
def chunk(ctx, node, args, kwargs, ids, ids_kw, out):
    """chunk (or split by a computed size): equal parts; prune the same positions in every part."""
    parts = movement(ctx, node, args, kwargs, ids, ids_kw, out)
    sizes = {tuple(p.shape) for p in out}
    moved = any(len(varying_dims(p)) for p in parts)
    if moved and len(sizes) > 1:
        ctx.cu.freeze(ids[0], f"{ctx.where(node)}: {ctx.op_name(node)} into unequal parts")
    elif moved:
        full = [expand_full(p, o.shape) for p, o in zip(parts, out)]
        for p in full[1:]:
            ctx.cu.union_tensors(full[0], p)
    return parts


def _dim_of(node: fx.Node, position: int, default: int = 0) -> int:
    return node.args[position] if len(node.args) > position else node.kwargs.get("dim", default)


def split(ctx, node, args, kwargs, ids, ids_kw, out):
    """torch.split / Tensor.split along a channel axis.

    Sizes computed from the input's shape follow it: equal parts, pruned alike (as chunk). Sizes written
    as constants must be rewritten in the pruned model: parts whose size comes from the same module
    attribute (edgeprune.graph.splits) are tied position by position, so they keep one common width that
    shrink writes back; a part whose size is a plain constant is frozen, so its width cannot change.
    """
    spec = split_spec(node)
    dim = _dim_of(node, 2) % ids[0].ndim
    if dim not in varying_dims(ids[0]):
        return movement(ctx, node, args, kwargs, ids, ids_kw, out)
    if not is_literal(spec):
        return chunk(ctx, node, args, kwargs, ids, ids_kw, out)
    parts = movement(ctx, node, args, kwargs, ids, ids_kw, out)
    where = ctx.where(node)
    sources = ctx.size_sources.get(node.name, [None])
    if isinstance(spec, int):
        if len({o.shape[dim] for o in out}) > 1:  # the last part holds what is left over: no rewritable width
            ctx.cu.freeze(ids[0], f"{where}: split by {spec} leaves a shorter last part")
            return parts
        sources = sources * len(out)
    for part, source in zip(parts, sources):
        if source is None:
            ctx.cu.freeze(part, f"{where}: split size {part.shape[dim]} is a constant in the model's code")
        elif varying_dims(part) != [dim]:
            ctx.cu.freeze(part, f"{where}: split part holds channels on more than one axis")
        else:
            first = ctx.size_parts.setdefault(source, part)
            if first.shape != part.shape:
                ctx.cu.freeze(first, f"{where}: {source.attr} sizes parts of different shapes")
                ctx.cu.freeze(part, f"{where}: {source.attr} sizes parts of different shapes")
            else:
                ctx.cu.union_tensors(first, part)
                # A part must keep a channel: a zero width would change the number of parts.
                ctx.cu.freeze(part.narrow(dim, 0, 1), f"{where}: keeps one channel of each split part")
    return parts


def tensor_split(ctx, node, args, kwargs, ids, ids_kw, out):
    """tensor_split into a number of sections behaves as chunk; at fixed indices it pins the channel count."""
    sections = node.args[1] if len(node.args) > 1 else node.kwargs.get("sections", node.kwargs.get("indices"))
    dim = _dim_of(node, 2) % ids[0].ndim
    if isinstance(sections, (list, tuple)) and dim in varying_dims(ids[0]):
        ctx.cu.freeze(ids[0], f"{ctx.where(node)}: tensor_split at fixed channel indices")
        return movement(ctx, node, args, kwargs, ids, ids_kw, out)
    return chunk(ctx, node, args, kwargs, ids, ids_kw, out)


def unbind(ctx, node, args, kwargs, ids, ids_kw, out):
    """unbind gives one tensor per index: the count of indices is fixed, so the unbound axis never shrinks."""
    dim = _dim_of(node, 1) % ids[0].ndim
    moving = varying_dims(ids[0])
    if dim in moving:
        if moving == [dim]:  # one channel per tensor: removing any would drop a tensor the code unpacks
            ctx.cu.freeze(ids[0], f"{ctx.where(node)}: unbind over a channel axis")
        else:  # a channel is removed across every unbound tensor at once
            full = expand_full(ids[0], args[0].shape)
            ctx.cu.union_tensors(full.narrow(dim, 0, 1), full)
    return movement(ctx, node, args, kwargs, ids, ids_kw, out)
