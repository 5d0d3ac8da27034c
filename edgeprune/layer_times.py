"""Where the time goes, per layer: runtime profiler times attributed to the model's module paths.

The validation report sets each layer's measured share of the time beside its share of the MACs, so a
user sees which layers the runtime handles worse than their arithmetic suggests. The hard part is the
attribution. The runtime renames, fuses and inserts nodes; the dynamo exporter records, on every ONNX
node, the module scope it came from (``pkg.torch.onnx.name_scopes``). onnxruntime's CPU provider names a
fused NCHWc convolution after the tensor it writes (``<value>_nchwc``), so such a name is followed back
through the activation/add it absorbed to the Conv that produced it. After the exporter folds BatchNorm
into the preceding Conv, that Conv's scope is the BatchNorm's, so BatchNorm paths map back to the conv
that feeds them. Nodes the runtime inserts (layout reorders) get their own row, as does anything that
cannot be attributed, so the times always add up. ExecuTorch has no ONNX file: XNNPACK's operators are matched
to the exported torch program's nodes in the order they ran (:func:`attribute_xnnpack`).
"""

from __future__ import annotations

import ast
import logging
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

log = logging.getLogger(__name__)

REORDERS = "(runtime) layout reorders"
_PASS_THROUGH = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Add", "Sum", "Mul"}
_MAC_OPS = {"Conv", "Gemm", "MatMul", "ConvTranspose"}
_MAC_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.ConvTranspose2d)


def macs_by_layer(model: nn.Module, macs_by_module: dict[str, int]) -> dict[str, int]:
    """The conv/linear entries of fvcore's per-module multiply-accumulates (see edgeprune.macs.count_macs)."""
    return {n: int(macs_by_module.get(n, 0)) for n, m in model.named_modules() if isinstance(m, _MAC_MODULES)}


def norm_to_conv(model: nn.Module, x: torch.Tensor) -> dict[str, str]:
    """Normalization module path -> path of the conv/linear whose output it normalizes (one forward pass)."""
    produced: dict[int, str] = {}
    mapping: dict[str, str] = {}
    names = {m: n for n, m in model.named_modules()}

    def record(module, args, output):
        if isinstance(module, _MAC_MODULES):
            produced[id(output)] = names[module]
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and args and id(args[0]) in produced:
            mapping[names[module]] = produced[id(args[0])]

    forward_with_leaf_hooks(model, x, record)
    return mapping


def forward_with_leaf_hooks(model: nn.Module, x: torch.Tensor, hook) -> None:
    """One no-grad forward pass with ``hook(module, args, output)`` on every leaf module."""
    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()


def _scope(node) -> str:
    """The innermost module path an exported ONNX node came from ('' when the exporter left none)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return ""
            # The last entry names the aten op, not a module.
            return str(scopes[-2]) if len(scopes) >= 2 else ""
    return ""


class OnnxAttribution:
    """Maps runtime node names of one exported ONNX file to module paths of the model it came from."""

    def __init__(self, onnx_path: str | Path, norms: dict[str, str]) -> None:
        import onnx

        graph = onnx.load(str(onnx_path), load_external_data=False).graph
        self.nodes = {n.name: n for n in graph.node}
        self.producer = {out: n for n in graph.node for out in n.output}
        self.norms = norms

    def _label(self, node) -> str:
        scope = _scope(node)
        if node.op_type in _MAC_OPS:
            return self.norms.get(scope, scope) or f"(unscoped) {node.op_type}"
        return f"{scope or '(model)'} · {node.op_type}"

    def _mac_node_behind(self, value: str):
        """The Conv/Gemm a fused runtime node absorbed, following its output back through activations/adds."""
        node = self.producer.get(value)
        for _ in range(4):  # Conv [+ Add] [+ activation]: a few hops at most
            if node is None or node.op_type in _MAC_OPS:
                return node
            if node.op_type not in _PASS_THROUGH:
                return None
            inputs = [self.producer.get(v) for v in node.input]
            macs = [n for n in inputs if n is not None and n.op_type in _MAC_OPS]
            node = macs[0] if macs else next((n for n in inputs if n is not None), None)
        return None

    def label(self, runtime_name: str, op: str) -> str:
        # onnxruntime names a node its int8 (QDQ) fusion made after the node it replaced, plus "_token_N"
        runtime_name = re.sub(r"_token_\d+$", "", runtime_name)
        if runtime_name in self.nodes:
            return self._label(self.nodes[runtime_name])
        if op.startswith("Reorder") or op == "Transpose":  # not in the graph: a layout change the runtime added
            return REORDERS
        if runtime_name in self.producer:  # OpenVINO names a node that writes a model output after that output
            return self._label(self.producer[runtime_name])
        base = runtime_name.split("/")[0]  # OpenVINO int8: NODE/fq_input_0, NODE/WithoutBiases/Dequantization...
        if base in self.nodes:
            return self._label(self.nodes[base])
        if runtime_name.endswith("_nchwc"):
            node = self._mac_node_behind(runtime_name[: -len("_nchwc")])
            if node is not None:
                return self._label(node)
        return f"(unattributed) {op}"


def ort_layer_times(
    onnx_path: Path, target, x: np.ndarray, norms: dict[str, str], runs: int = 20
) -> tuple[dict[str, float], dict[str, float]]:
    """Milliseconds per inference by module path and by ONNX op type, from onnxruntime's own profiler."""
    from edgeprune.backends.onnxruntime import profile_events

    nodes = [(e["name"][: -len("_kernel_time")], e.get("args", {}).get("op_name", "?"), e["dur"] / 1e3 / runs)
             for e in profile_events(target, str(onnx_path), x, runs)
             if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]  # fmt: skip
    return attribute_nodes(nodes, OnnxAttribution(onnx_path, norms))


def attribute_nodes(nodes, attribution: OnnxAttribution) -> tuple[dict[str, float], dict[str, float]]:
    """Per-inference ms by module path and by runtime op type, from (runtime node name, op type, ms) rows."""
    by_layer: dict[str, float] = {}
    by_op: dict[str, float] = {}
    for name, op, ms in nodes:
        label = attribution.label(name, op)
        by_layer[label] = by_layer.get(label, 0.0) + ms
        by_op[op] = by_op.get(op, 0.0) + ms
    return by_layer, by_op


def openvino_layer_times(deployed: Path, onnx_path: Path, target, x: np.ndarray, norms: dict[str, str],
                         runs: int = 20) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """Milliseconds per inference by module path and by OpenVINO node type, from OpenVINO's own per-node counters
    on ``deployed`` (the ONNX export, or the int8 IR made from it), attributed through ``onnx_path``'s node names
    (OpenVINO keeps them)."""
    from edgeprune.backends.openvino import profile_nodes

    return attribute_nodes(profile_nodes(target, deployed, x, runs), OnnxAttribution(onnx_path, norms))


# XNNPACK operator kinds by the exported program's op that each stands for (its name, overload dropped); every
# conv and linear is one kind, as XNNPACK runs a 1x1 conv as "Fully Connected"; SiLU runs as two operators
_XNNPACK_KINDS = {"conv1d": ("MACs",), "conv2d": ("MACs",), "convolution": ("MACs",), "conv_transpose2d": ("MACs",),
                  "linear": ("MACs",), "addmm": ("MACs",), "add": ("Add",), "mul": ("Multiply",),
                  "cat": ("Concatenate",), "max_pool2d": ("Max Pooling",), "avg_pool2d": ("Average Pooling",),
                  "adaptive_avg_pool2d": ("Mean",), "mean": ("Mean",), "sigmoid": ("Sigmoid",),
                  "silu": ("Sigmoid", "Multiply"), "hardswish": ("HardSwish",)}  # fmt: skip
_XNNPACK_MACS = {"Convolution": "MACs", "Deconvolution": "MACs", "Fully Connected": "MACs"}
_RUNTIME = {"DELEGATE_CALL": "(runtime) delegate calls", "Method::execute": "(runtime) between operators"}


def program_labels(program) -> dict[str, list[str]]:
    """XNNPACK operator kind -> the labels of a ``torch.export`` program's nodes of that kind, in graph order (a
    conv or linear: its module path; another op: its module's path and the kind)."""
    labels: dict[str, list[str]] = {}
    for node in program.graph_module.graph.nodes:
        name = getattr(node.target, "__name__", str(node.target)).split(".")[0]
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        scope = stack[-1][0] if stack else ""
        for kind in _XNNPACK_KINDS.get(name, ()) if node.op == "call_function" else ():
            labels.setdefault(kind, []).append(scope if kind == "MACs" and scope else
                                               f"{scope or '(model)'} · {kind}")  # fmt: skip
    return labels


def xnnpack_operator(event: str) -> str:
    """An ExecuTorch event's operator: XNNPACK's name without its number ("Convolution (NHWC, F32) IGEMM")."""
    return re.sub(r" #\d+$", "", event)


def attribute_xnnpack(events: list[tuple[str, float]], labels: dict[str, list[str]]) -> tuple[dict, dict]:
    """Per-inference ms by module path and by runtime operator from ExecuTorch's events (in the order they ran).
    XNNPACK names an operator by kind and number, not by node, but runs a delegated graph in its order: where a
    kind ran as often as the program has nodes of it, the n-th run is the n-th node; other operators of the kind
    (fused into a neighbour some of the time: ReLU after an add) keep a row of their own."""
    runs = [xnnpack_operator(name) for name, _ in events]
    kinds = [_XNNPACK_MACS.get(k, k) for k in (op.split(" (")[0] for op in runs)]
    ran = Counter(kinds)
    seen: dict[str, int] = {}
    by_layer: dict[str, float] = {}
    by_op: dict[str, float] = {}
    for (name, ms), op, kind in zip(events, runs, kinds):
        if len(labels.get(kind, ())) == ran[kind]:
            label = labels[kind][seen.get(kind, 0)]
            seen[kind] = seen.get(kind, 0) + 1
        elif kind == "Transpose":  # XNNPACK's NCHW <-> NHWC at a delegate's edges
            label = REORDERS
        elif name in _RUNTIME:
            label = _RUNTIME[name]
        else:
            label = f"(unattributed) {op.removeprefix('native_call_')}"
        by_layer[label] = by_layer.get(label, 0.0) + ms
        by_op[op] = by_op.get(op, 0.0) + ms
    return by_layer, by_op


def executorch_layer_times(deployed: Path, module: nn.Module, target, x: np.ndarray,
                           runs: int = 20) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """Milliseconds per inference by module path and by runtime operator, from ExecuTorch's own event times for the
    ``.pte`` at ``deployed`` (XNNPACK's per-operator profile), attributed through ``module``'s exported program."""
    from edgeprune.backends.base import BackendError
    from edgeprune.backends.executorch import export_program, profile_ops

    try:
        events = profile_ops(target, deployed, x, runs)
    except (BackendError, RuntimeError) as exc:  # a runtime built without ETDump, or no devtools: no table
        log.warning("no per-layer times on %s: ExecuTorch could not profile the program: %s", target.name, exc)
        return {}, {}
    return attribute_xnnpack(events, program_labels(export_program(module, tuple(x.shape))))


def attribute_engine_layers(times: dict[str, float], onnx_path: Path, norms: dict[str, str]) -> dict[str, float]:
    """TensorRT engine-layer times by module path (a fused layer is named after its ONNX nodes, joined by +)."""
    attribution = OnnxAttribution(onnx_path, norms)
    out: dict[str, float] = {}
    for name, ms in times.items():
        label = attribution.label(name.split(" + ")[0].strip(), "?")
        label = f"(engine) {name}" if label.startswith("(unattributed)") else label
        out[label] = out.get(label, 0.0) + ms
    return out


def torch_layer_times(model: nn.Module, x: torch.Tensor, runs: int = 10) -> tuple[dict[str, float], dict[str, float]]:
    """Milliseconds per inference by leaf module (torch.profiler ranges opened around each module) and by
    aten op (self time), from one profiled set of runs."""
    from torch.profiler import ProfilerActivity, profile, record_function

    names = {m: n for n, m in model.named_modules()}
    open_ranges: list = []

    def enter(module, args):
        rf = record_function(f"edgeprune::{names[module]}")
        rf.__enter__()
        open_ranges.append(rf)

    def leave(module, args, output):
        open_ranges.pop().__exit__(None, None, None)

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_pre_hook(enter) for m in leaves] + [m.register_forward_hook(leave) for m in leaves]
    cuda = x.is_cuda
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    try:
        with torch.no_grad(), profile(activities=activities) as prof:
            for _ in range(runs):
                model(x)
            if cuda:
                torch.cuda.synchronize()
    finally:
        for h in handles:
            h.remove()
    by_layer, by_op = {}, {}
    for e in prof.key_averages():
        if e.key.startswith("edgeprune::"):
            us = getattr(e, "device_time_total", 0) if cuda else e.cpu_time_total
            by_layer[e.key[len("edgeprune::") :]] = us / 1e3 / runs
        elif e.key.startswith("aten::"):
            us = getattr(e, "self_device_time_total", 0) if cuda else e.self_cpu_time_total
            if us > 0:
                by_op[e.key] = us / 1e3 / runs
    return by_layer, by_op


def layer_table(a: dict, b: dict, top: int = 15) -> list[str]:
    """Markdown rows: the ``top`` layers by original time, with time share vs MACs share, then the rest."""
    ms_a, ms_b = a.get("ms_by_layer") or {}, b.get("ms_by_layer") or {}
    macs_a = a.get("macs_by_layer") or {}
    total_ms, total_macs = sum(ms_a.values()) or 1.0, a.get("macs") or sum(macs_a.values()) or 1
    rows = ["| layer | original ms | pruned ms | time share | MACs share | time ÷ MACs share |",
            "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    ranked = sorted(ms_a, key=ms_a.get, reverse=True)
    for label in ranked[:top]:
        t, m = ms_a[label] / total_ms, macs_a.get(label, 0) / total_macs
        ratio = f"{t / m:.2f}" if m else "-"
        rows.append(f"| {label} | {ms_a[label]:.3f} | {ms_b.get(label, 0):.3f} | {t:.1%} | {m:.1%} | {ratio} |")
    rest = ranked[top:]
    if rest:
        t = sum(ms_a[k] for k in rest)
        rest_b = sum(v for k, v in ms_b.items() if k not in ranked[:top])
        m = sum(macs_a.get(k, 0) for k in rest) / total_macs
        rows.append(f"| {len(rest)} more | {t:.3f} | {rest_b:.3f} | {t / total_ms:.1%} | {m:.1%} | |")
    return rows


def largest_activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the largest tensor any leaf module outputs (a lower bound on activation memory)."""
    biggest = 0

    def hook(module, args, output):
        nonlocal biggest
        if isinstance(output, torch.Tensor):
            biggest = max(biggest, output.numel() * output.element_size())

    forward_with_leaf_hooks(model, x, hook)
    return biggest
