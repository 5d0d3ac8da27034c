"""One layer geometry's latency table: the channel grid to measure, and its timing by a sweep.

Each point is a one-layer micro-model (conv+ReLU ONNX, or its torch twin for backends that take modules)
timed by the shared harness; the grid and the staircase scan are timed together by
:func:`edgeprune.latency.sweep.run_sweep`. The profiler (:mod:`.profiler`) measures every geometry of the
models it profiles this way, then calibrates end to end.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import replace
from pathlib import Path

import onnx
import torch.nn as nn

from edgeprune.backends import measure_latency, prepare_runner, takes_module
from edgeprune.backends.process import run_apart
from edgeprune.latency.layers import Geometry, Layer
from edgeprune.latency.micro import input_for, micro_model
from edgeprune.latency.profile import DEFAULT_SETTINGS, ProfileError, ProfileSettings, Table
from edgeprune.latency.sweep import run_sweep, settle_all_spikes
from edgeprune.targets import Target


def grid_axes(layers: list[Layer], settings: ProfileSettings = DEFAULT_SETTINGS
              ) -> dict[str, tuple[list[int], list[int] | None]]:  # fmt: skip
    """Per geometry: the channel values to measure (fractions of every layer's widths, merged)."""
    axes: dict[str, tuple[set[int], set[int]]] = {}
    for layer in layers:
        if layer.geometry.op == "gconv" and layer.cout != layer.geometry.paired_cout(layer.cin):
            raise ProfileError(
                f"{layer.path}: grouped conv with {layer.cin} -> {layer.cout} channels (not a whole number of "
                "filters per input channel) is not profiled yet"
            )
        ins, outs = axes.setdefault(layer.geometry.key, (set(), set()))
        step = layer.geometry.group_width if layer.geometry.op == "gconv" else 1
        for f in settings.grid_fractions:
            ins.add(max(step, round(f * layer.cin / step) * step))
            outs.add(max(1, round(f * layer.cout)))
    out = {}
    for key, (ins, outs) in axes.items():
        one_d = Geometry.from_key(key).op in ("dwconv", "gconv")
        out[key] = (sorted(ins), None if one_d else sorted(outs))
    return out


def _time_layer(target: Target, g: Geometry, cin: int, cout: int, tmp: Path, timing: str = "wall",
                settings: ProfileSettings = DEFAULT_SETTINGS, built: dict | None = None
                ) -> tuple[float, float]:  # fmt: skip
    """Median ms and spread of one layer: an ONNX micro-model, or (backends that take modules) the same in torch.

    ``built``: runners kept by (cin, cout) across the sweep's passes where building one costs far more than
    timing it (ExecuTorch lowers and loads a program, an int8 target quantizes: 0.3 to 1 s, against about 1 ms
    of runs); a later pass needs a later timing, not a new build. Plain ONNX sessions are made fresh each time."""
    x, built = input_for(g, cin), {} if built is None else built
    if (cin, cout) in built:
        runner = built[(cin, cout)]
    elif takes_module(target):
        runner = built[(cin, cout)] = prepare_runner(target, torch_micro_model(g, cin, cout), x.shape)
    else:
        path = tmp / "micro.onnx"  # read when the runner is made: a cached runner no longer needs it
        onnx.save(micro_model(g, cin, cout), path)
        if timing == "kernel":
            from edgeprune.backends.onnxruntime import measure_kernels

            return measure_kernels(target, str(path), x, **settings.micro_timing)
        runner = prepare_runner(target, path, x.shape)
        if target.precision == "int8":
            built[(cin, cout)] = runner
    stats = measure_latency(runner, x, replace(target, **settings.micro_timing))
    return stats.median_ms, stats.spread_pct


def layer_timing(target: Target, requested: str = "wall") -> str:
    """How micro-models are timed: "wall" (the default), or "kernel" (CPU onnxruntime only): the profiler's
    compute-kernel time, which leaves out the session overhead and layout reorders of a one-layer network.

    Kernel timing predicts ResNet-50 better and ResNet-56 worse, and the ResNet-56 demo's plan ran slower
    with it (see the README's profile section), so it is an option, not the default.
    """
    if requested not in ("wall", "kernel"):
        raise ProfileError(f"layer timing must be 'wall' or 'kernel', not {requested!r}")
    if requested == "kernel" and not (target.backend == "onnxruntime" and target.device == "cpu"):
        # On a GPU provider the profiler's node times are launch times, not device time.
        raise ProfileError(f"kernel timing needs onnxruntime on CPU; target {target.name} is {target.backend} on "
                           f"{target.device}")  # fmt: skip
    return requested


def torch_micro_model(g: Geometry, cin: int, cout: int) -> nn.Module:
    """The torch twin of :func:`micro_model` (conv+ReLU, or linear)."""
    if g.op == "linear":
        return nn.Linear(cin, cout)
    groups = cin if g.op == "dwconv" else (cin // g.group_width if g.op == "gconv" else 1)
    cout = cin if g.op == "dwconv" else cout
    conv = nn.Conv1d if g.dims == 1 else nn.Conv2d
    return nn.Sequential(conv(cin, cout, g.kernel, g.stride, g.kernel // 2, groups=groups), nn.ReLU())


def measure_table(target: Target, key: str, cin_axis: list[int], cout_axis: list[int] | None, tmp: Path,
                  timing: str = "wall", settings: ProfileSettings = DEFAULT_SETTINGS) -> Table:  # fmt: skip
    """One geometry's grid and staircase scan, timed by a sweep (:mod:`.sweep`): two shuffled passes and a
    third timing where they disagree, so a step in the table is one that every pass saw, not a burst from
    a neighbour on the machine. In a fresh process where the backend keeps what it builds (ExecuTorch:
    :func:`~edgeprune.backends.process.run_apart`)."""
    return run_apart(target, _measure_table_here, target, key, cin_axis, cout_axis, tmp, timing, settings,
                     what=f"the {key} table")  # fmt: skip


def _points(g: Geometry, cin_axis: list[int], cout_axis: list[int] | None, scan_c: list[int]
            ) -> tuple[list[list[tuple[int, int]]], list[tuple[int, int]], list[list[tuple[int, int]]]]:  # fmt: skip
    """A table's grid rows and scan as (cin, cout) points, and the lines its staircase is read along (rows,
    columns, the scan)."""
    if cout_axis is None:  # depthwise / grouped: whole conv groups go, so cout follows cin
        rows = [[(c, g.paired_cout(c)) for c in cin_axis]]
        scan = [(c, g.paired_cout(c)) for c in scan_c]
        return rows, scan, [*rows, scan]
    rows = [[(ci, co) for co in cout_axis] for ci in cin_axis]
    scan = [(cin_axis[-1], c) for c in scan_c]  # 2-D: scan cout at the full input width
    return rows, scan, [*rows, *(list(col) for col in zip(*rows)), scan]


def _measure_table_here(target: Target, key: str, cin_axis: list[int], cout_axis: list[int] | None, tmp: Path,
                        timing: str, settings: ProfileSettings) -> Table:  # fmt: skip
    g = Geometry.from_key(key)
    scan_c = scan_widths(g, (cout_axis or cin_axis)[-1], settings)
    rows, scan, lines = _points(g, cin_axis, cout_axis, scan_c)
    built: dict = {}  # one table's runners at a time: they are freed with it
    sweep = run_sweep([p for row in rows for p in row] + scan,
                      lambda ci, co: _time_layer(target, g, ci, co, tmp, timing, settings, built),
                      seed=zlib.crc32(key.encode()), lines=lines, **settings.sweep)  # fmt: skip
    ms = [[sweep.ms(p) for p in row] for row in rows]
    spread = [[sweep.spread(p) for p in row] for row in rows]
    table = Table(cin_axis, cout_axis, ms[0] if cout_axis is None else ms, spread[0] if cout_axis is None else spread)
    table.scan_c, table.scan_ms = scan_c, [sweep.ms(p) for p in scan]
    table.retimed, table.timed, table.spikes = len(sweep.retimed), len(sweep.timings), len(sweep.spikes)
    return table


def settle_table_spikes(target: Target, key: str, table: Table, tmp: Path, timing: str = "wall",
                        settings: ProfileSettings = DEFAULT_SETTINGS) -> tuple[Table, dict]:  # fmt: skip
    """A stored table's spikes (:func:`~edgeprune.latency.sweep.settle_all_spikes`) timed again beside their
    neighbours, as a sweep now settles them: the table with their settled ms, and {(cin, cout): (stored ms,
    settled ms)}. For tables measured before spikes were timed that way. In a fresh process where the backend
    keeps what it builds."""
    return run_apart(target, _settle_here, target, key, table, tmp, timing, settings,
                     what=f"the {key} table's spikes")  # fmt: skip


def _settle_here(target: Target, key: str, table: Table, tmp: Path, timing: str,
                 settings: ProfileSettings) -> tuple[Table, dict]:  # fmt: skip
    g = Geometry.from_key(key)
    rows, scan, lines = _points(g, table.cin, table.cout, table.scan_c or [])
    grid = [table.ms] if table.cout is None else table.ms
    stored = {p: v for row, values in zip(rows, grid) for p, v in zip(row, values)}
    stored.update(zip(scan, table.scan_ms or []))
    built: dict = {}
    settled = settle_all_spikes(stored.__getitem__, lines, settings.sweep["tolerance"],
                                lambda ci, co: _time_layer(target, g, ci, co, tmp, timing, settings, built),
                                random.Random(zlib.crc32(key.encode())))  # fmt: skip
    now = {**stored, **settled}
    ms = [[now[p] for p in row] for row in rows]
    fixed = replace(table, ms=ms[0] if table.cout is None else ms, spikes=table.spikes + len(settled),
                    scan_ms=[now[p] for p in scan] if table.scan_ms else table.scan_ms)  # fmt: skip
    return fixed, {p: (stored[p], v) for p, v in settled.items()}


def scan_widths(g: Geometry, top: int, settings: ProfileSettings = DEFAULT_SETTINGS) -> list[int]:
    """Channel counts of the dense scan: every scan["step"] (or conv group) down scan["span"] from ``top``."""
    span, step = settings.scan["span"], g.group_width if g.op == "gconv" else settings.scan["step"]
    return sorted({c for c in range(top, max(0, top - span) - 1, -step) if c >= max(1, step)})
