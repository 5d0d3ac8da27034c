"""Residual branches a plan may remove whole: channel groups that live entirely inside one branch.

A branch is a chain of layers that ends in a conv (optionally followed by a batch norm, then optionally an
elementwise activation, as in YOLO's bottlenecks) whose output is added to something else, every node in it
used once. When a group holds every channel inside such a
chain (the outputs of all its convs but the last, and the last conv's inputs), emptying the group leaves
the last conv reading nothing: the branch's output is a per-channel constant (the conv's bias through the
norm and the activation), added to the other operand. Shrinking replaces the chain by that constant, so the branch's
layers stop running at all, which on a small network saves the per-layer overhead that narrowing them
never does (cpu-ort, ResNet-56: see docs/benchmarks/branch-removal.md).
"""

from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn as nn

from edgeprune.graph.groups import CONV_IN, CONV_OUT, ChannelGroup
from edgeprune.graph.optable import ELEMENTWISE_MODULES

# activations a constant can go through once, at shrink time: elementwise and deterministic (not dropout)
_TAIL_ACTS = tuple(t for t in ELEMENTWISE_MODULES if not issubclass(t, nn.modules.dropout._DropoutNd))

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_ADDS = (operator.add, operator.iadd, torch.add)


@dataclass(frozen=True)
class Branch:
    """The module paths of one removable chain, in forward order; ``tail`` is its last conv.

    ``tail_act`` is the path of the activation after the tail (norm) as its parent holds it: an activation
    module shared by many layers (Ultralytics' ``Conv.default_act``) appears in the trace under its first
    path only, so the path here is the one under the tail's own parent, where it can be replaced alone.
    """

    modules: tuple[str, ...]
    tail: str
    tail_norm: str | None
    inner_layers: tuple[str, ...]  # the convs and norms before the tail: all must lose every channel
    tail_act: str | None = None


def _single_module(node: fx.Node, modules: dict[str, nn.Module], types: tuple[type, ...]) -> bool:
    return node.op == "call_module" and isinstance(modules.get(node.target), types) and len(node.users) == 1


def _own_path(act: nn.Module, tail: str, model: nn.Module, once: set[int]) -> str | None:
    """The path under ``tail``'s parent that holds ``act``, if replacing it there changes only this call.

    ``once``: ids of the modules each holder calls once (as many call sites in the trace as paths in the
    model): Ultralytics' convs each call the shared activation once; a block that calls its one ReLU both
    inside the branch and at its end is not in it.
    """
    parent = tail.rpartition(".")[0]
    names = [n for n, m in model.get_submodule(parent).named_children() if m is act]
    if len(names) != 1 or id(act) not in once:
        return None
    return f"{parent}.{names[0]}" if parent else names[0]


def _chain_into(node: fx.Node, modules: dict[str, nn.Module], model: nn.Module, once: set[int]) -> Branch | None:
    """The chain of single-use layers that ends in ``node`` (an addition's operand), if it ends in a conv."""
    act = None
    if _single_module(node, modules, _TAIL_ACTS):
        act, node = modules[node.target], node.args[0]
    tail_norm = None
    if isinstance(node, fx.Node) and _single_module(node, modules, _NORMS):
        tail_norm, node = node.target, node.args[0]
    if not isinstance(node, fx.Node) or not _single_module(node, modules, _CONVS):
        return None
    tail, chain = node.target, []
    tail_act = _own_path(act, tail, model, once) if act is not None else None
    if act is not None and tail_act is None:
        return None
    node = node.args[0]
    while isinstance(node, fx.Node) and _single_module(node, modules, (*_CONVS, *_NORMS, *ELEMENTWISE_MODULES)):
        chain.append(node.target)
        node = node.args[0]
    chain.reverse()
    inner = tuple(p for p in chain if isinstance(modules[p], (*_CONVS, *_NORMS)))
    after = tuple(p for p in (tail_norm, tail_act) if p)
    return Branch(tuple(chain) + (tail,) + after, tail, tail_norm, inner, tail_act)


def find_branches(fx_graph: fx.Graph, model: nn.Module) -> list[Branch]:
    """Every chain that feeds an addition and ends in a conv (then optionally a norm and an activation)."""
    modules = dict(model.named_modules())
    calls = Counter(id(modules[n.target]) for n in fx_graph.nodes if n.op == "call_module")
    holders = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    once = {i for i, n in calls.items() if n == holders[i]}
    found = []
    for node in fx_graph.nodes:
        is_add = (node.op == "call_function" and node.target in _ADDS) or (
            node.op == "call_method" and node.target in ("add", "add_"))  # fmt: skip
        if not is_add:
            continue
        for operand in node.args[:2]:
            if isinstance(operand, fx.Node) and (branch := _chain_into(operand, modules, model, once)):
                found.append(branch)
    return found


def removable_groups(groups: list[ChannelGroup], branches: list[Branch]) -> dict[int, Branch]:
    """Group id -> the branch that emptying the group removes.

    A group qualifies when its members are exactly the inside of a branch: the output channels (and
    norms) of every conv before the tail, and the tail's input channels. Anything outside the branch
    reading or writing these channels would change if the branch became a constant.
    """
    by_tail = {b.tail: b for b in branches if b.inner_layers}
    out = {}
    for group in groups:
        if not group.prunable or len(group.prunable_units) != group.size:
            continue
        kinds = group.modules()
        tails = [p for p, k in kinds.items() if k == {CONV_IN} and p in by_tail]
        if len(tails) != 1:
            continue
        branch = by_tail[tails[0]]
        inside = set(kinds) - {branch.tail} == set(branch.inner_layers)
        if inside and all(CONV_IN not in kinds[p] or CONV_OUT in kinds[p] for p in branch.inner_layers):
            out[group.id] = branch
    return out
