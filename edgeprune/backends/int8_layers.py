"""Which layers an int8 model leaves in fp32, chosen by timing on the device (a target's ``int8_layers = "measured"``).

Int8 does not pay everywhere: onnxruntime runs some kernels slower in int8 than in fp32 (large depthwise
convolutions), and an activation it cannot fuse into an int8 convolution (hard-swish, GELU) runs in float
between a DequantizeLinear and a QuantizeLinear that the fp32 model does not have. Which layers lose depends
on the runtime and the CPU, so it is measured, not guessed. The graph's nodes are grouped (:func:`group_nodes`):
contiguous parts of the graph, kinds of layer (``Conv 3x3 depthwise``, ``Conv 1x1 dense``, ``Mul``, ...), and
every layer. In that order each group is left in fp32 when the model then runs faster than without it, by the
whole confidence interval of the paired ratio (timed with the target's own rounds). The backend's quantizer
leaves the chosen nodes in float: onnxruntime's excluded nodes and OpenVINO's NNCF ignored scope name the ONNX
export's nodes; ExecuTorch's XNNPACK quantizer filters the nodes of the exported torch program.

The trial models are calibrated on random inputs: calibration sets scales, not which nodes the quantized graph
has, so the trials time as the deployed model will (see :mod:`edgeprune.backends.quantize`).
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgeprune.backends.base import BackendError
from edgeprune.targets import Target
from edgeprune.timing import Ratio

log = logging.getLogger(__name__)

# operators onnxruntime's QDQ quantizer gives int8 kernels or passes int8 through; the others stay float anyway
QUANTIZED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Concat", "Sigmoid", "Softmax",
                 "Resize", "MaxPool", "AveragePool", "GlobalAveragePool")  # fmt: skip

# (groups left in fp32 so far, groups to try) -> the trial's time over the current model's; raises BackendError
# where the backend would not build the trial
Compare = Callable[[list[str], list[str]], Ratio]


EVERYTHING = "every layer"  # the last trial: the fp32 model itself
PARTS = 4  # contiguous parts of the graph tried in fp32: a float region pays for conversions at its ends only


@dataclass
class Int8Layers:
    """The measured choice: the groups of nodes left in fp32, and every trial that decided it."""

    groups: dict[str, list[str]]  # label -> names of the fp32 ONNX's nodes it holds (groups may overlap)
    fp32_groups: list[str] = field(default_factory=list)
    # {"fp32": [labels], "ratio" (trial / current; None and "not_built": why, where the backend refused), "kept"}
    trials: list[dict] = field(default_factory=list)

    @property
    def all_fp32(self) -> bool:
        """Whether every node stays in fp32 (every layer, or parts that add up to it): the fp32 model ships as
        it is, unquantized."""
        return EVERYTHING in self.fp32_groups or len(self.fp32_nodes) == len(self.groups[EVERYTHING])

    @property
    def fp32_nodes(self) -> list[str]:
        """The nodes of the chosen groups, once each, in graph order."""
        if EVERYTHING in self.fp32_groups:
            return list(self.groups[EVERYTHING])
        chosen = {n for g in self.fp32_groups for n in self.groups[g]}
        return [n for n in self.groups[EVERYTHING] if n in chosen]

    def runtime_target(self, target: Target) -> Target:
        """The target the model with these groups in fp32 runs on: ``target``, or its fp32 form where every node
        stays in fp32 (the fp32 model itself, unquantized)."""
        return target.as_fp32() if self.all_fp32 else target

    def to_dict(self) -> dict:
        return {"fp32_groups": self.fp32_groups, "fp32_nodes": len(self.fp32_nodes),
                "nodes": len(self.groups[EVERYTHING]),
                "groups": {k: len(v) for k, v in self.groups.items()}, "trials": self.trials}  # fmt: skip


def fp32_text(chosen: dict) -> str:
    """A choice as :meth:`Int8Layers.to_dict` records it, in words: ``12 of 48 nodes (part 1 of 4, Mul)``."""
    return f"{chosen['fp32_nodes']} of {chosen['nodes']} nodes ({', '.join(chosen['fp32_groups']) or 'none'})"


def group_nodes(nodes: Sequence[tuple[str, str | None]]) -> dict[str, list[str]]:
    """Groups of a graph's nodes, given in graph order as (name, kind; None where int8 gives the node no kernel
    of its own): ``PARTS`` contiguous parts of the graph ("part 1 of 4", ...), one group per kind, and
    ``EVERYTHING``. Parts and everything hold every node: a quantizer wraps more operators than those it gives
    int8 kernels (normalizations, reshapes) when their neighbours are int8, and a float region must be float
    throughout."""
    groups: dict[str, list[str]] = {}
    parts = min(PARTS, len(nodes))
    for i in range(parts if parts > 1 else 0):
        part = nodes[i * len(nodes) // parts : (i + 1) * len(nodes) // parts]
        groups[f"part {i + 1} of {parts}"] = [name for name, _ in part]
    for name, kind in nodes:
        if kind is not None:
            groups.setdefault(kind, []).append(name)
    groups[EVERYTHING] = [name for name, _ in nodes]
    return groups


def conv_kind(op: str, weight_shape: Sequence[int], groups: int) -> str:
    """A convolution's kind, by what a runtime picks its kernel by: ``Conv 3x3 depthwise``, ``Conv 1x1 dense``,
    ``Conv 5x5 grouped``."""
    _, per_group, *kernel = weight_shape
    style = "dense" if groups == 1 else "depthwise" if per_group == 1 else "grouped"
    return f"{op} {'x'.join(map(str, kernel))} {style}"


def layer_groups(onnx_path: str | Path) -> dict[str, list[str]]:
    """:func:`group_nodes` over the named nodes of an fp32 ONNX graph; the kinds are the operators of
    ``QUANTIZED_OPS``, a convolution by :func:`conv_kind`."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    dims = {t.name: list(t.dims) for t in graph.initializer}
    nodes = []
    for node in (n for n in graph.node if n.name):
        kind = node.op_type if node.op_type in QUANTIZED_OPS else None
        if node.op_type == "Conv" and len(node.input) > 1 and len(dims.get(node.input[1], [])) >= 3:
            kind = conv_kind("Conv", dims[node.input[1]], next((a.i for a in node.attribute if a.name == "group"), 1))
        nodes.append((node.name, kind))
    return group_nodes(nodes)


def faster(ratio: Ratio) -> bool:
    """A trial counts as faster only when its whole interval is below the current model's time."""
    return ratio.high < 1.0


def _run_trial(compare: Compare, now: list[str], trial: list[str]) -> dict:
    """One trial's record: kept when faster by the whole interval; one the backend would not build (an int8
    model with no int8 convolution left, a partition XNNPACK refuses) is not kept, and says why."""
    try:
        ratio = compare(now, trial)
    except BackendError as exc:
        log.info("int8 layers: %s not built: %s", trial, exc)
        return {"fp32": trial, "ratio": None, "kept": False, "not_built": str(exc)}
    log.info("int8 layers: %s in fp32: %.3fx the time (%.3f-%.3f)%s", trial, ratio.median, ratio.low, ratio.high,
             ", kept" if faster(ratio) else "")  # fmt: skip
    return {"fp32": trial, "ratio": ratio.to_dict(), "kept": faster(ratio)}


def search_fp32_groups(groups: dict[str, list[str]], compare: Compare, check: Compare | None = None) -> Int8Layers:
    """The greedy search of the module docstring over ``groups`` (:func:`layer_groups`), with ``compare`` timing
    each trial; the parts of the graph first, then the kinds by size, then every layer. Last, the groups chosen
    are timed together against every layer in int8 (with ``check``, which builds both anew; default
    ``compare``) and kept only when faster by the whole interval (the trial marked ``"check"``)."""
    result = Int8Layers(groups)
    parts = [g for g in groups if g.startswith("part ")]
    kinds = sorted((g for g in groups if g not in parts and g != EVERYTHING), key=lambda k: (-len(groups[k]), k))
    for group in [*parts, *kinds, EVERYTHING]:
        if not groups[group] or set(groups[group]) <= set(result.fp32_nodes):
            continue  # nothing this trial would change
        trial = [EVERYTHING] if group == EVERYTHING else [*result.fp32_groups, group]
        record = _run_trial(compare, result.fp32_groups, trial)
        result.trials.append(record)
        if record["kept"]:
            result.fp32_groups = trial
    if result.fp32_groups:  # the choice as a whole against every layer in int8, both built anew: single trials
        # pass by chance now and then, and two ExecuTorch lowerings of one model differ by a few per cent
        record = _run_trial(check or compare, [], result.fp32_groups)
        result.trials.append({**record, "check": True})
        if not record["kept"]:
            log.info("int8 layers: %s in fp32 not faster than every layer in int8 as a whole: none kept",
                     result.fp32_groups)  # fmt: skip
            result.fp32_groups = []
    return result


def choose_fp32_layers(target: Target, source, input_shape: tuple[int, ...]) -> Int8Layers:
    """Time the trials of :func:`search_fp32_groups` on the int8 ``target`` for ``source``: the fp32 ONNX path
    (onnxruntime, OpenVINO), or the torch module (ExecuTorch, grouped by
    :func:`edgeprune.backends.executorch.program_nodes`; the trials run in a process of their own). The
    deployed model is then quantized with ``fp32_nodes`` left in float. A trial the backend refuses to build
    (an int8 model with no int8 layer left) is not kept."""
    from edgeprune.backends.process import run_apart

    # ExecuTorch's trials lower a program each: the search runs in a fresh process, which takes their memory
    return run_apart(target, _choose_here, target, source, tuple(input_shape), what="the int8 layer search")


def _choose_here(target: Target, source, input_shape: tuple[int, ...]) -> Int8Layers:
    """:func:`choose_fp32_layers` in this process."""
    import numpy as np

    from edgeprune.backends import get_backend, takes_module
    from edgeprune.backends.base import time_runners
    from edgeprune.backends.executorch import program_nodes

    on_module = takes_module(target)
    groups = group_nodes(program_nodes(source, input_shape)) if on_module else layer_groups(source)
    backend = get_backend(target.backend)
    x = np.random.default_rng(1).standard_normal(input_shape, dtype=np.float32)
    built: dict[tuple[str, ...], object] = {}  # the current model's runner, and the trial's
    numbers = itertools.count()

    def build(run_on: Target, fp32_nodes: list[str], folder: Path):
        if on_module:
            extra = {"keep_fp32": fp32_nodes} if run_on.precision == "int8" else {}
            return backend.prepare(run_on, module=source, input_shape=input_shape, **extra)
        if run_on.precision != "int8":
            return backend.prepare(run_on, onnx_path=str(source), input_shape=input_shape)
        trial = folder / f"trial{next(numbers)}"  # a folder per trial: the backend writes its int8 file beside
        trial.mkdir()  # the model it quantizes
        (trial / "model.onnx").symlink_to(Path(source).resolve())
        return backend.prepare(target, onnx_path=str(trial / "model.onnx"), input_shape=input_shape,
                               keep_fp32=fp32_nodes)  # fmt: skip

    def runner(fp32: Sequence[str], folder: Path):
        if tuple(fp32) not in built:
            layers = Int8Layers(groups, list(fp32))
            built[tuple(fp32)] = build(layers.runtime_target(target), layers.fp32_nodes, folder)  # as it would ship
        return built[tuple(fp32)]

    with tempfile.TemporaryDirectory() as tmp:

        def compare(now: list[str], trial: list[str]) -> Ratio:
            for key in [k for k in built if k != tuple(now)]:  # one runner besides the current model's
                del built[key]
            runners = {"current": runner(now, Path(tmp)), "trial": runner(trial, Path(tmp))}
            return time_runners(runners, x, target, reference="current").ratios["trial"]

        def check(now: list[str], trial: list[str]) -> Ratio:
            built.clear()  # both models built anew, not the runners the trials timed
            return compare(now, trial)

        try:
            return search_fp32_groups(groups, compare, check)
        finally:
            built.clear()  # ExecuTorch's runners hold the process's threadpool size until released


__all__ = ["EVERYTHING", "Int8Layers", "choose_fp32_layers", "conv_kind", "faster", "group_nodes", "layer_groups",
           "search_fp32_groups"]
