"""Symbolic tracing with torch.fx, and a clear error naming the module and line where it stops.

A model whose submodules have a forward fx cannot follow (a ``list(tensor.chunk(...))``) may name
trace-time substitutes in an attribute ``fx_forwards``: module type -> ``fn(module, *args, **kwargs)``
computing the same thing in a traceable way. The substitute runs as that module's forward (its nodes
belong to the module, so split widths are found on its attributes); it is used for instances whose class
keeps that type's forward. Only the trace uses it: the model runs its own code, and the oracle checks
that the two agree.

With ``freeze_unknown``, a submodule fx cannot follow is kept whole instead (:func:`trace_around`): traced as
one opaque node, its channels frozen, the rest of the model traced and pruned as usual.

Given an example input, a condition or number on a traced shape, or a tensor's device, takes the value it has at
that input (:mod:`edgeprune.graph.branch_values`).
"""

from __future__ import annotations

import functools
import inspect
import linecache
import os
import types
from collections.abc import Callable, Collection, Mapping

import torch
import torch.fx as fx
import torch.nn as nn

from edgeprune.graph import optable
from edgeprune.graph.branch_values import NOT_THE_MODEL, ConcreteTracing
from edgeprune.graph.errors import UntraceableError


class LeafTracer(ConcreteTracing):
    """Keeps torch.nn layers (and edgeprune's own layers) as single nodes; traces through the rest.

    ``max_nodes`` stops a trace that grows past it (a loop over a patched attribute, see splits.py); the
    modules named in ``opaque`` (qualified names) are single nodes too. ``example``: the input at which the
    model's code reads traced values; ``replay``: the values to give it instead, in order (branch_values.py)."""

    def __init__(self, max_nodes: int | None = None, forwards: Mapping[type, Callable] | None = None,
                 opaque: Collection[str] = (), example: torch.Tensor | None = None,
                 replay: list | None = None) -> None:  # fmt: skip
        super().__init__(example, replay)
        self.max_nodes = max_nodes
        self.forwards = dict(forwards or {})
        self.opaque = frozenset(opaque)

    def call_module(self, m: nn.Module, forward: Callable, args, kwargs):
        substitute = self._substitute(type(m))
        if substitute is not None:
            forward = functools.partial(substitute, m)
        return super().call_module(m, forward, args, kwargs)

    def _substitute(self, cls: type) -> Callable | None:
        for base in cls.__mro__:
            if base in self.forwards and cls.forward is base.forward:
                return self.forwards[base]
        return None

    def create_node(self, *args, **kwargs) -> fx.Node:
        if self.max_nodes is not None and len(self.graph.nodes) >= self.max_nodes:
            raise RuntimeError(f"the trace grew past {self.max_nodes} nodes")
        return super().create_node(*args, **kwargs)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname in self.opaque or optable.module_rule(m) is not None:
            return True
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict, *optable.TRACED_INTO)):
            return False
        return m.__module__.startswith("torch.nn")


def trace_model(model: nn.Module, max_nodes: int | None = None, opaque: Collection[str] = (),
                example: torch.Tensor | None = None, replay: list | None = None) -> fx.Graph:  # fmt: skip
    """Symbolically trace ``model`` (in its current train/eval mode) with torch.nn layers, and the submodules
    named in ``opaque``, as leaves; where the model's code reads a traced value it gets the value at ``example``,
    or the next of ``replay`` (:class:`LeafTracer`).

    Raises:
        UntraceableError: fx cannot follow the model's code (Python control flow on tensor values, or on
            shapes without ``example``; calls fx cannot record); the message names the module and the line.
    """
    try:
        tracer = LeafTracer(max_nodes, getattr(model, "fx_forwards", None), opaque, example, replay)
        return tracer.trace(model, concrete_args=_defaults_after_input(model) or None)
    except Exception as exc:  # fx raises many types; all mean "cannot trace"
        raise _untraceable(model, exc) from exc


def _defaults_after_input(model: nn.Module) -> dict:
    """``forward()``'s parameters after the input that have defaults, at those defaults: the model runs on the
    input alone, and an optional argument left None (Hiera's ``mask``) is not traced into the code that uses
    it."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    try:
        params = list(inspect.signature(model.forward).parameters.values())[1:]
    except (TypeError, ValueError):  # a forward Python cannot describe (compiled): traced as it is
        return {}
    return {p.name: p.default for p in params if p.kind in kinds and p.default is not inspect.Parameter.empty}


MAX_OPAQUE = 256  # a model with more untraceable submodules than this is not worth pruning around


def trace_around(model: nn.Module, keep_whole: bool, example: torch.Tensor | None = None
                 ) -> tuple[fx.Graph, frozenset[str]]:  # fmt: skip
    """:func:`trace_model` (on ``example``), and with ``keep_whole`` each submodule fx cannot follow kept as one
    opaque node (retraced until the rest traces): the graph and the opaque modules' names.

    Raises:
        UntraceableError: without ``keep_whole``; or where the model's own forward (no submodule) stops fx.
    """
    opaque: set[str] = set()
    while True:
        try:
            return trace_model(model, opaque=opaque, example=example), frozenset(opaque)
        except UntraceableError as exc:
            path = exc.module[0] if exc.module else None
            if not keep_whole or path in (None, "<top level>") or path in opaque or len(opaque) >= MAX_OPAQUE:
                raise
            opaque.add(path)


def _untraceable(model: nn.Module, exc: Exception) -> UntraceableError:
    return UntraceableError(type(model).__name__, *locate_failure(model, exc), f"{type(exc).__name__}: {exc}")


def locate_failure(model: nn.Module, exc: BaseException) -> tuple[tuple[str, str] | None, tuple[str, int, str] | None]:
    """Where ``exc`` was raised in ``model``: the innermost module whose code was running (path, type name),
    and the last line of the model's own code (file name, line, text) on the way, not torch's or the tracer's."""
    paths = {id(m): p for p, m in model.named_modules()}
    module_at, line_at = None, None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        owner = frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and id(owner) in paths:
            module_at = (paths[id(owner)] or "<top level>", type(owner).__name__)
        filename = frame.f_code.co_filename
        if not filename.startswith(NOT_THE_MODEL):  # the model's own code
            text = linecache.getline(filename, tb.tb_lineno).strip()
            line_at = (os.path.basename(filename), tb.tb_lineno, text)
        tb = tb.tb_next
    return module_at, line_at
