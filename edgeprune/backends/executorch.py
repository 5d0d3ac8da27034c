"""ExecuTorch backend with the XNNPACK delegate (CPU): the torch module exported with torch.export, lowered to
XNNPACK (``to_edge_transform_and_lower``), saved as a ``.pte`` program and run by the ExecuTorch runtime; int8
through PT2E quantization with XNNPACK's quantizer. All imported on first use (the ``executorch`` extra)."""

from __future__ import annotations

import copy
import importlib
import tempfile
import warnings
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeprune.backends.base import BackendError
from edgeprune.backends.memory import probe_memory
from edgeprune.backends.quantize import QuantizationError, calibration_batches, calibration_for
from edgeprune.logs import quiet
from edgeprune.targets import Target

INSTALL_HINT = "pip install 'edgeprune[executorch]'"
DELEGATE = "XnnpackBackend"
# Ops that carry the MACs: none may be left to ExecuTorch's portable (reference) kernels.
_MAC_OPS = ("convolution", "linear", "addmm", "mm", "bmm")
_DEQUANTIZE = ("dequantize_per_tensor", "dequantize_per_channel")
_PLUMBING = ("executorch_call_delegate", "getitem")
# ExecuTorch's threadpool is one per process; resizing it frees the old pool, which the XNNPACK programs
# loaded on it still point to: it may be resized only while no runner holds a program (see set_threads)
_live_runners: weakref.WeakSet = weakref.WeakSet()
_loaded = [False]  # whether this process has loaded a program (the pool is then never resized)


def _import(module: str):
    try:
        # torchao registers an Enum as a pytree constant, which newer torch logs as deprecated on every import
        with quiet("torch.utils._pytree"):
            return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise BackendError(f"{module.split('.')[0]} is not installed ({INSTALL_HINT})") from exc
    except (ImportError, OSError) as exc:  # a wheel whose libraries do not load against this torch
        import torch

        raise BackendError(f"{module} does not load with torch {torch.__version__}: {exc}"[:500]) from exc


def _op(node) -> str:
    """The op's bare name: ``convolution`` for aten.convolution.default, in aten or edge dialect."""
    target = node.target
    name = target.name() if hasattr(target, "name") else getattr(target, "__name__", str(target))
    return name.split("::")[-1].split(".")[0]


@dataclass
class Delegation:
    """What the lowered program runs where: op counts inside XNNPACK subgraphs and outside them (left to the
    portable kernels), and how many MAC ops take int8 weights."""

    subgraphs: int = 0
    delegated: Counter = field(default_factory=Counter)
    outside: Counter = field(default_factory=Counter)
    int8_macs: int = 0


def _is_dequantized(weight) -> bool:
    """Whether a MAC op's weight comes out of a dequantize node (PT2E's form of an int8 weight)."""
    return getattr(weight, "op", "") == "call_function" and _op(weight) in _DEQUANTIZE


def delegation(edge) -> Delegation:
    """Count the ops of a lowered program (``to_edge_transform_and_lower``'s result) in and out of XNNPACK."""
    out = Delegation()
    graph_module = edge.exported_program().graph_module
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        if _op(node) == "executorch_call_delegate":
            lowered = getattr(graph_module, node.args[0].target)
            if lowered.backend_id != DELEGATE:
                continue
            out.subgraphs += 1
            for inner in lowered.original_module.graph.nodes:
                if inner.op == "call_function":
                    out.delegated[_op(inner)] += 1
                    if _op(inner) in _MAC_OPS and _is_dequantized(inner.args[1]):
                        out.int8_macs += 1
        elif _op(node) not in _PLUMBING:
            out.outside[_op(node)] += 1
    return out


def check_delegation(found: Delegation, target: Target) -> None:
    """Refuse a program that XNNPACK does not run: no XNNPACK subgraph, a MAC op left to the portable kernels,
    or (int8) no convolution or linear layer with int8 weights."""
    if not found.subgraphs:
        raise BackendError(f"XNNPACK took no part of the model; the portable kernels would run {dict(found.outside)}")
    left = {op: n for op, n in found.outside.items() if op in _MAC_OPS}
    if left:
        raise BackendError(f"XNNPACK left {left} to ExecuTorch's portable kernels")
    if target.precision == "int8" and not found.int8_macs:
        raise QuantizationError("XNNPACK runs no convolution or linear layer with int8 weights")


def lowered_form(module):
    """``module`` as it is lowered: each :class:`~edgeprune.models.layers.ChannelRemap` (a gather, which XNNPACK
    does not run: with the strided slice before it, each split the delegated graph in two, with transposes at
    both ends) as its equivalent 1x1 convolution, on a copy; ``module`` itself where it has none."""
    from edgeprune.models.layers import ChannelRemap

    if isinstance(module, ChannelRemap):
        return module.as_conv()
    remaps = [name for name, m in module.named_modules() if isinstance(m, ChannelRemap)]
    if not remaps:
        return module
    module = copy.deepcopy(module)
    for name in remaps:
        parent, _, attr = name.rpartition(".")
        setattr(module.get_submodule(parent), attr, module.get_submodule(name).as_conv())
    return module


def export_program(module, input_shape: tuple[int, ...]):
    """``torch.export`` of ``module`` (eval mode, in its :func:`lowered_form`) at the fixed ``input_shape``."""
    import torch

    try:
        return torch.export.export(lowered_form(module.eval()), (torch.zeros(input_shape),))
    except Exception as exc:  # torch.export raises its own errors for unsupported Python
        raise BackendError(f"torch.export could not export the model: {type(exc).__name__}: {exc}"[:500]) from exc


def fold_constants(program):
    """``program`` with the ops that read weights only folded into constants: a removed residual branch's
    per-channel constant (expand, copy), the index masks of a zero-padded shortcut. XNNPACK takes none of them;
    left to the portable kernels, each splits the delegated graph, with layout copies in and out of it
    (docs/benchmarks/targets.md has what that cost)."""
    return _import("executorch.exir.passes.constant_prop_pass").constant_prop_pass(program)


def post_training_quantizer():
    """XNNPACK's quantizer without its training-only conv+BN patterns. ``prepare_pt2e`` folds every BN into its
    conv before annotating, so after it they match nothing, yet each one exports its pattern graphs again on
    every call: most of the time quantizing one small model took."""
    base = _import("executorch.backends.xnnpack.quantizer.xnnpack_quantizer").XNNPACKQuantizer

    class PostTrainingQuantizer(base):
        SUPPORTED_PATTERNS = [p for p in base.SUPPORTED_PATTERNS if not p.is_qat]

    return PostTrainingQuantizer()


# the ops XNNPACK's quantizer gives int8 kernels, by the kind int8_layers groups them under (convolutions by
# int8_layers.conv_kind); the others stay float, or pass int8 through
_QUANTIZED_KINDS = {"linear": "Linear", "add": "Add", "mul": "Mul", "cat": "Concat",
                    "adaptive_avg_pool2d": "AdaptiveAvgPool", "conv_transpose2d": "ConvTranspose"}  # fmt: skip


def program_nodes(module, input_shape: tuple[int, ...]) -> list[tuple[str, str | None]]:
    """The nodes XNNPACK's quantizer annotates (those of :func:`quantize_program`'s graph), in graph order, with
    their kind for :func:`edgeprune.backends.int8_layers.group_nodes`: the names ``keep_fp32`` takes."""
    from edgeprune.backends.int8_layers import conv_kind

    nodes = []
    for node in fold_constants(export_program(module, input_shape)).module().graph.nodes:
        if node.op != "call_function" or _op(node) in _PLUMBING:
            continue
        op = _op(node).rstrip("_")  # an in-place op quantizes as its functional form
        kind = _QUANTIZED_KINDS.get(op)
        weight = node.args[1] if op == "conv2d" and len(node.args) > 1 else None
        if weight is not None and "val" in getattr(weight, "meta", {}) and weight.meta["val"].dim() >= 3:
            kind = conv_kind("Conv", tuple(weight.meta["val"].shape), node.args[6] if len(node.args) > 6 else 1)
        nodes.append((node.name, kind))
    return nodes


def quantize_program(program, input_shape: tuple[int, ...], samples: np.ndarray, quantizer=None,
                     keep_fp32: Sequence[str] = ()):  # fmt: skip
    """PT2E int8 of an exported program with XNNPACK's quantizer (per-channel symmetric weights, per-tensor
    activations) calibrated on ``samples`` (N, C, H, W), exported again, with the nodes named in ``keep_fp32``
    (:func:`program_nodes`) left in float. ``quantizer``: another XNNPACK quantizer instance than
    :func:`post_training_quantizer`'s (to compare against XNNPACK's stock one)."""
    import torch

    quantizer_module = _import("executorch.backends.xnnpack.quantizer.xnnpack_quantizer")
    pt2e = _import("torchao.quantization.pt2e.quantize_pt2e")
    config = quantizer_module.get_symmetric_quantization_config(is_per_channel=True)
    quantizer = (quantizer or post_training_quantizer()).set_global(config)
    if keep_fp32:  # a pattern (conv + relu) with any node kept in float is left in float whole
        kept = frozenset(keep_fp32)
        quantizer.set_filter_function(lambda node: node.name not in kept)
    try:
        observed = pt2e.prepare_pt2e(program.module(), quantizer)
        with torch.no_grad():
            for batch in calibration_batches(samples, input_shape[0]):
                observed(torch.from_numpy(batch))
        return torch.export.export(pt2e.convert_pt2e(observed), (torch.zeros(input_shape),))
    except Exception as exc:  # the quantizer raises whatever torch.export and its observers raise
        raise QuantizationError(f"XNNPACK's quantizer could not quantize the model: {type(exc).__name__}: "
                                f"{exc}"[:500]) from exc  # fmt: skip


def lower(target: Target, module, input_shape: tuple[int, ...], calibration: np.ndarray | None = None,
          keep_fp32: Sequence[str] = ()) -> tuple[bytes, Delegation, str | None]:  # fmt: skip
    """The ``.pte`` program of ``module`` lowered to XNNPACK, its checked :class:`Delegation`, and what
    calibrated it (int8: "images", or "random" for timing only; see :mod:`edgeprune.backends.quantize`);
    ``keep_fp32``: nodes the int8 program leaves in float (:func:`quantize_program`)."""
    exir = _import("executorch.exir")
    partitioner = _import("executorch.backends.xnnpack.partition.xnnpack_partitioner").XnnpackPartitioner
    program, calibrated = fold_constants(export_program(module, input_shape)), None
    if target.precision == "int8":
        samples, calibrated = calibration_for(target, calibration, input_shape)
        program = quantize_program(program, input_shape, samples, keep_fp32=keep_fp32)
    try:
        edge = exir.to_edge_transform_and_lower(program, partitioner=[partitioner()])
    except Exception as exc:  # the partitioner asserts on graphs it cannot split (a partition with a cycle)
        raise BackendError(f"ExecuTorch could not lower the {target.precision} program to XNNPACK: "
                           f"{type(exc).__name__}: {exc}"[:500]) from exc  # fmt: skip
    found = delegation(edge)
    check_delegation(found, target)
    return edge.to_executorch().buffer, found, calibrated


def set_threads(threads: int) -> None:
    """Size ExecuTorch's process-wide threadpool (XNNPACK's threads); refused while a runner's program runs on
    a pool of another size."""
    busy = sorted({r.threads for r in _live_runners} - {threads})
    if busy:
        raise BackendError(f"ExecuTorch's threadpool is shared by the process and programs loaded on {busy[0]} "
                           f"threads are still in use, so it cannot run one on {threads}: release those runners "
                           "or time this target in a process of its own")  # fmt: skip
    lib = _import("executorch.extension.pybindings.portable_lib")
    if lib._threadpool_get_thread_count() != threads:
        if _loaded[0]:  # XNNPACK keeps state from programs loaded earlier; a worker crashed after such a reset
            raise BackendError(f"ExecuTorch's threadpool runs {lib._threadpool_get_thread_count()} threads for "
                               f"programs loaded earlier in this process; resizing it to {threads} is not safe: "
                               "time this target in a process of its own")  # fmt: skip
        lib._unsafe_reset_threadpool(threads)
    got = lib._threadpool_get_thread_count()
    if got != threads:
        raise BackendError(f"requested {threads} threads, ExecuTorch's threadpool has {got}")


def load_method(target: Target, path: str | Path):
    """The ``forward`` method of the ``.pte`` program at ``path``, loaded on ``target.threads`` threads."""
    runtime = _import("executorch.runtime").Runtime.get()
    set_threads(target.threads)
    _loaded[0] = True
    return runtime.load_program(str(path)).load_method("forward")


def profile_ops(target: Target, path: str | Path, x: np.ndarray, runs: int) -> list[tuple[str, float]]:
    """The runtime's own event times for the ``.pte`` at ``path`` run ``runs`` times on ``x`` (its ETDump): (event,
    median ms per inference) in the order they ran. XNNPACK reports each of its operators ("Convolution (NHWC,
    F32) IGEMM #3"); a delegate call's event ("DELEGATE_CALL") holds its operators, so it is given as what it
    adds to them; operators outside the delegate are the portable kernels' ("native_call_<op>"); the run's time
    outside every event comes last ("Method::execute")."""
    import torch

    lib = _import("executorch.extension.pybindings.portable_lib")
    inspector = _import("executorch.devtools").Inspector
    set_threads(target.threads)
    _loaded[0] = True
    program = lib._load_for_executorch(str(path), enable_etdump=True, debug_buffer_size=0)
    inputs = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))]
    for _ in range(runs):
        program.forward(inputs)
    with tempfile.TemporaryDirectory(prefix="edgeprune-etdump-") as tmp:
        dump = Path(tmp) / "run.etdp"
        program.write_etdump_result_to_file(str(dump))
        with quiet(), warnings.catch_warnings():  # the inspector's notes on debug data that was not asked for
            warnings.simplefilter("ignore")
            blocks = inspector(etdump_path=str(dump)).event_blocks
    events, inner, whole = [], 0.0, 0.0
    for event in (e for b in blocks if b.name == "Execute" for e in b.events):
        if event.perf_data is None or event.name == "OPERATOR_CALL":  # wraps the native_call event beside it
            continue
        ms = float(np.median(event.perf_data.raw))
        if event.name == "Method::execute":  # the whole run: what the other events leave of it is added last
            whole += ms
            continue
        if event.is_delegated_op:
            inner += ms
        elif event.name == "DELEGATE_CALL":
            ms, inner = max(ms - inner, 0.0), 0.0
        events.append((event.name, ms))
    return events + [("Method::execute", max(whole - sum(ms for _, ms in events), 0.0))]


class ExecutorchRunner:
    def __init__(self, method, threads: int, folder: tempfile.TemporaryDirectory, model_path: Path,
                 found: Delegation, calibration: str | None) -> None:  # fmt: skip
        import torch

        self.torch = torch
        self.method = method
        self.threads = threads  # the threadpool size the program was loaded on
        _live_runners.add(self)
        self._folder = folder  # holds the .pte for as long as the runner lives
        self.model_path = model_path  # the .pte the runtime runs (what validate measures)
        self.delegation = found
        self.calibration = calibration  # int8: "images" or "random" (timing only)

    def run(self, x: np.ndarray) -> np.ndarray:
        # the runtime reads a tensor's memory in its dim order, ignoring strides: a strided view (an NHWC image
        # batch seen as NCHW) would be read as garbage
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.method.execute([self.torch.from_numpy(x)])[0].numpy()

    def sync(self) -> None:  # execute() returns when the program has run
        pass


class ExecutorchBackend:
    name = "executorch"
    # torch and ExecuTorch keep memory from every program lowered, even once freed (figures in
    # docs/benchmarks/targets.md), and the threadpool is sized once per process: what lowers many programs
    # runs in a fresh process (edgeprune.backends.process.run_apart)
    builds_apart = True

    def unavailable_reason(self, target: Target) -> str | None:
        if target.device != "cpu":
            return "edgeprune runs ExecuTorch (XNNPACK) on the CPU only (device = \"cpu\")"
        if target.precision not in ("fp32", "int8"):
            return f"the executorch backend runs fp32 or int8, not {target.precision}"
        try:
            runtime = _import("executorch.runtime").Runtime.get()
            _import("executorch.backends.xnnpack.partition.xnnpack_partitioner")
            if target.precision == "int8":
                _import("executorch.backends.xnnpack.quantizer.xnnpack_quantizer")
                _import("torchao.quantization.pt2e.quantize_pt2e")
        except BackendError as exc:
            return str(exc)
        if not runtime.backend_registry.is_available(DELEGATE):
            names = runtime.backend_registry.registered_backend_names
            return f"this ExecuTorch runtime has no {DELEGATE} (it has {names})"
        return None

    def prepare(self, target: Target, onnx_path: str | None = None, module=None, input_shape=None,
                calibration: np.ndarray | None = None, keep_fp32: Sequence[str] = ()) -> ExecutorchRunner:  # fmt: skip
        """``module`` lowered to XNNPACK at ``input_shape`` (int8: quantized first, with ``keep_fp32``'s nodes
        left in float, see :func:`lower`), written as a ``.pte`` in a folder the runner keeps, and loaded by
        the runtime."""
        if module is None or input_shape is None:
            raise BackendError("the executorch backend lowers a torch module (torch.export), not an ONNX file: "
                               "pass module= and input_shape=")  # fmt: skip
        why = self.unavailable_reason(target)
        if why:
            raise BackendError(f"target {target.name} cannot run here: {why}")
        program, found, calibrated = lower(target, module, tuple(input_shape), calibration, keep_fp32)
        folder = tempfile.TemporaryDirectory(prefix="edgeprune-pte-")
        path = Path(folder.name) / "model.pte"
        path.write_bytes(program)
        return ExecutorchRunner(load_method(target, path), target.threads, folder, path, found, calibrated)

    def reload(self, target: Target, runner: ExecutorchRunner) -> ExecutorchRunner:
        """``runner``'s ``.pte`` loaded again: a new session, no new lowering. One session in several ran a whole
        program 20-30 % slow here (docs/benchmarks/targets.md), so one session's speed is not the program's."""
        return ExecutorchRunner(load_method(target, runner.model_path), target.threads, runner._folder,
                                runner.model_path, runner.delegation, runner.calibration)  # fmt: skip

    def memory(self, target: Target, model_path: str, input_shape: tuple[int, ...]) -> dict:
        """Memory of a fresh process that loads the ``.pte`` at ``model_path`` and runs it once (MB)."""
        load = f"load_method(t, {str(model_path)!r}).execute([torch.zeros({tuple(input_shape)!r})])"
        return probe_memory("import torch\nimport executorch.runtime\n"
                            "from edgeprune.backends.executorch import load_method", load, target)  # fmt: skip
