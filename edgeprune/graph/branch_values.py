"""Values a traced model's Python code reads at the traced input, so that torch.fx follows it.

fx traces symbolically and stops where Python needs a real value of a traced one: a condition (``if H %
window: pad``), a number (``int(math.sqrt(T))``), a device (``torch.autocast(x.device.type)``). Given an example
input, :class:`ConcreteTracing` runs the graph recorded so far on real tensors (each node once) and answers the
value the model has at that input on the CPU. edgeprune plans at one input size and the pruned model runs its
own code, so the trace follows the path the model takes there. A value computed from tensor *contents* is
refused, as fx refuses it: the path would depend on the data. A condition or number that reads a channel count
freezes those channels (:func:`edgeprune.graph.shape_reads.freeze_branch_sizes`): pruning would change it.
A retrace (splits.py patches sizes and traces again) replays the first trace's values in order.
"""

from __future__ import annotations

import contextlib
import inspect
import linecache
import operator
import os

import torch
import torch.fx as fx
import torch.nn as nn

# while fx traces, it patches Module.__call__ (a real module call would record nodes): undone while evaluating
_UNPATCHED = getattr(fx._symbolic_trace, "_maybe_revert_all_patches", contextlib.nullcontext)
BRANCH = "edgeprune_branch"  # node.meta: (the value the trace used, "file.py:line `code`")
CONCRETE = "edgeprune_concrete"  # the output node's meta: every value used, in order (a retrace replays them)
# frames of fx's machinery and of edgeprune's tracer, which are not the model's code (here and fxtrace.py)
NOT_THE_MODEL = (os.path.dirname(torch.__file__), os.path.dirname(__file__))


class _Evaluator:
    """Evaluates the nodes of a graph being traced from ``root`` on ``example``, each once."""

    def __init__(self, root: nn.Module, example: torch.Tensor) -> None:
        self.root = root
        self.example = example
        self.values: dict[fx.Node, object] = {}

    def value_of(self, graph: fx.Graph, node: fx.Node) -> object:
        with torch.no_grad(), _UNPATCHED():
            for n in graph.nodes:
                if n not in self.values:
                    self.values[n] = self._run(n)
                if n is node:
                    break
        return self.values[node]

    def _run(self, node: fx.Node) -> object:
        if node.op == "placeholder":
            first = next(iter(node.graph.nodes)) is node
            return self.example if first else (node.args[0] if node.args else None)
        if node.op == "get_attr":
            obj = self.root
            for part in node.target.split("."):
                obj = getattr(obj, part)
            return obj
        args = fx.node.map_arg(node.args, self.values.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, self.values.__getitem__)
        if node.op == "call_module":
            return self.root.get_submodule(node.target)(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        return None


class KnownProxy(fx.Proxy):
    """A traced value that Python may read as a number, and a tensor whose device and dtype may be read."""

    def __getattr__(self, k: str):
        if k in ("device", "dtype"):
            return self.tracer.concrete(self, lambda v: getattr(v, k), what=k)
        return super().__getattr__(k)

    def __setitem__(self, key, value) -> None:
        # an assignment into a tensor the model built (ConViT's relative positions): recorded in place
        self.tracer.create_proxy("call_function", operator.setitem, (self, key, value), {})

    def __len__(self) -> int:
        # the length of a buffer (or of the input's first dim): a size, read at the traced input
        return self.tracer.concrete(self, len, what="len")

    def __int__(self) -> int:
        return self.tracer.concrete(self, int)

    def __index__(self) -> int:
        return self.tracer.concrete(self, int)

    def __float__(self) -> float:
        return self.tracer.concrete(self, float)


class ConcreteTracing(fx.Tracer):
    """An fx tracer that reads values at ``example`` where the model's code needs them, or replays ``replay``."""

    def __init__(self, example: torch.Tensor | None, replay: list | None) -> None:
        super().__init__()
        # a buffer forward() reads (ConViT's cached positions) is a proxy, so code on it is traced too
        self.proxy_buffer_attributes = example is not None or replay is not None
        self.example = example
        self.replay = replay
        self.used: list = []

    def trace(self, root, concrete_args=None) -> fx.Graph:
        self.evaluator = _Evaluator(root, self.example) if self.example is not None else None
        with _state_kept(root):
            graph = super().trace(root, concrete_args)
        next(n for n in reversed(graph.nodes) if n.op == "output").meta[CONCRETE] = list(self.used)
        return graph

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return KnownProxy(node, self) if self.example is not None or self.replay is not None else super().proxy(node)

    def to_bool(self, obj: fx.Proxy) -> bool:
        if self.example is None and self.replay is None:
            return super().to_bool(obj)
        return self.concrete(obj, bool)

    def concrete(self, obj: fx.Proxy, convert, what: str = "") -> object:
        if self.replay is not None:
            if len(self.used) >= len(self.replay):
                raise fx.proxy.TraceError("the retrace read a value the first trace did not")
            value = self.replay[len(self.used)]
        else:
            try:
                raw = self.evaluator.value_of(self.graph, obj.node)
            except Exception as exc:  # its inputs cannot be computed here: refused as fx refuses it, with why
                raise fx.proxy.TraceError(f"a traced value could not be computed ({exc})") from exc
            if isinstance(raw, torch.Tensor) and not what and _reads_input(obj.node):
                raise fx.proxy.TraceError("symbolically traced variables cannot be used as inputs to control flow "
                                          "(it depends on the tensor's values, not only on its shape)")  # fmt: skip
            value = convert(raw)
        self.used.append(value)
        if not what:
            obj.node.meta[BRANCH] = (value, model_line())
        return value


@contextlib.contextmanager
def _state_kept(root: nn.Module):
    """Undo what the model's forward() stored on its modules while traced (ConViT caches a tensor it builds
    from the input's size): a proxy left there would break the user's model."""
    if not isinstance(root, nn.Module):
        yield
        return
    before = [(m, dict(m._buffers), dict(m.__dict__)) for m in root.modules()]
    try:
        yield
    finally:
        for module, buffers, attrs in before:
            for store, was in ((module._buffers, buffers), (module.__dict__, attrs)):
                for name in [n for n, v in store.items() if isinstance(v, fx.Proxy)]:
                    if name in was:
                        store[name] = was[name]
                    else:
                        del store[name]


def _reads_input(node: fx.Node) -> bool:
    """Whether a value depends on the model's input; one that depends on its buffers alone is model state."""
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n.op == "placeholder":
            return True
        if n not in seen:
            seen.add(n)
            stack.extend(n.all_input_nodes)
    return False


def model_line() -> str:
    """``file.py:line `code``` of the innermost frame outside torch and edgeprune's graph: the model's code."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_code.co_filename.startswith(NOT_THE_MODEL):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    code = frame.f_code.co_filename
    return f"{os.path.basename(code)}:{frame.f_lineno} `{linecache.getline(code, frame.f_lineno).strip()}`"


def traced_values(graph: fx.Graph) -> dict[str, list]:
    """Each line of the model's code that read a traced value (a condition, a number) and what it read, in order."""
    found: dict[str, list] = {}
    for node in graph.nodes:
        if BRANCH in node.meta:
            value, line = node.meta[BRANCH]
            found.setdefault(line, []).append(value)
    return found


def values_used(graph: fx.Graph) -> list:
    """What the trace of ``graph`` read at its example, in order (:class:`ConcreteTracing`'s ``replay``)."""
    return next(n for n in reversed(graph.nodes) if n.op == "output").meta.get(CONCRETE, [])
