"""Whole networks timed end to end on a target: one model, or variants each beside a fresh session of the dense
model (the calibration, the profile check and the planner's measured rounds all time through here)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from edgeprune.backends import measure_latency, prepare_runner, takes_module, time_runners
from edgeprune.backends.int8_layers import Int8Layers
from edgeprune.backends.process import run_apart
from edgeprune.export import export_onnx
from edgeprune.targets import Target


def export_for(target: Target, model: nn.Module, input_shape: tuple[int, ...], path: Path) -> nn.Module | Path:
    """What :func:`prepare_runner` takes for ``model``: the module itself (:func:`takes_module`), else its ONNX
    at ``path``."""
    if takes_module(target):
        return model
    export_onnx(model, torch.randn(*input_shape), path)
    return path


def prepare_model(target: Target, model: nn.Module, input_shape: tuple[int, ...], path: Path):
    """A runner for ``model`` on ``target`` (exported to ONNX at ``path`` unless the backend takes the module)."""
    return prepare_runner(target, export_for(target, model, input_shape, path), input_shape)


_SEARCHED: ContextVar[dict | None] = ContextVar("edgeprune_fp32_layer_searches", default=None)


@contextmanager
def layer_search_kept() -> Iterator[None]:
    """Within it, :func:`timed_as_deployed` searches the fp32 layers of one architecture on one target once: the
    steps of a schedule all time beside the same unpruned model, and the search times layers, which the weights do
    not change. Outside it every call searches (a user's next run may be on a busier or quieter machine)."""
    token = _SEARCHED.set({})
    try:
        yield
    finally:
        _SEARCHED.reset(token)


def _architecture_key(target: Target, model: nn.Module, input_shape: tuple[int, ...]) -> str:
    digest = hashlib.sha256(repr((target, tuple(input_shape), str(model))).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
    return digest.hexdigest()


def timed_as_deployed(target: Target, model: nn.Module, input_shape: tuple[int, ...]
                      ) -> tuple[Target, tuple[str, ...], Int8Layers | None]:  # fmt: skip
    """Where and how the plans of ``model`` are timed as they would ship: on an int8 target with ``int8_layers =
    "measured"``, the layers measured faster in fp32 on ``model`` itself (timed here first: seconds to a minute,
    once per architecture within :func:`layer_search_kept`) are left in float in every plan timed, and where every
    layer is faster so, the plans are timed on the fp32 target; otherwise ``target`` as it is, every layer it
    quantizes in int8. Returns (target to time on, nodes left in float, the measured choice or None). The deployed
    model measures its own choice again."""
    if target.precision != "int8" or target.int8_layers != "measured":
        return target, (), None
    from edgeprune.backends.int8_layers import choose_fp32_layers

    kept = _SEARCHED.get()
    key = _architecture_key(target, model, input_shape) if kept is not None else ""
    chosen = kept.get(key) if kept is not None else None
    if chosen is None:
        with tempfile.TemporaryDirectory() as tmp:
            chosen = choose_fp32_layers(target, export_for(target, model, input_shape, Path(tmp) / "model.onnx"),
                                        input_shape)  # fmt: skip
        if kept is not None:
            kept[key] = chosen
    run_on = chosen.runtime_target(target)
    return run_on, tuple(chosen.fp32_nodes) if run_on.precision == "int8" else (), chosen


def measure_model(target: Target, model: nn.Module, input_shape: tuple[int, ...], tmp: Path) -> float:
    """End-to-end median ms of ``model`` on ``target`` (exported to ONNX unless the backend takes the module)."""
    runner = prepare_model(target, model, input_shape, tmp / "model.onnx")
    x = np.random.default_rng(0).standard_normal(input_shape, dtype=np.float32)
    return measure_latency(runner, x, target).median_ms


def measure_variants(target: Target, models: list, shape: tuple[int, ...], passes: int = 1,
                     desc: str = "pass", keep_fp32: Sequence[str] = ()) -> list[list[tuple]]:  # fmt: skip
    """``out[p][j]``: (dense ms, ms of variant j) in pass p, for ``models`` = [dense, variant 0, ...]. Each
    variant is timed in interleaved rounds with a fresh session of the dense model, so drift over the
    minutes this takes hits both alike; its ms is the dense median times its paired ratio to the dense
    session (:meth:`edgeprune.timing.Timing.paired_ms`), so ms / dense ms is that ratio. In a fresh process
    where the backend keeps what it builds (:func:`~edgeprune.backends.process.run_apart`). ``keep_fp32``: on an
    int8 target, the nodes every model leaves in float (as deployed with ``int8_layers = "measured"``)."""
    return run_apart(target, _measure_variants_here, target, models, shape, passes, desc, tuple(keep_fp32),
                     what=f"timing ({desc})", echo=True)  # its progress bars


def _measure_variants_here(target: Target, models: list, shape: tuple[int, ...], passes: int, desc: str,
                           keep_fp32: tuple[str, ...] = ()) -> list[list[tuple]]:  # fmt: skip
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        # exported once; every pass builds fresh sessions from the files
        items = [export_for(target, m, shape, Path(tmp) / f"variant{i}.onnx") for i, m in enumerate(models)]

        def time_pair(item) -> tuple[float, float]:
            runners = {"dense": prepare_runner(target, items[0], shape, keep_fp32=keep_fp32),
                       "variant": prepare_runner(target, item, shape, keep_fp32=keep_fp32)}  # fmt: skip
            ms = time_runners(runners, x, target, reference="dense").paired_ms()
            return ms["dense"], ms["variant"]

        return [[time_pair(item) for item in tqdm(items[1:], desc=f"{desc} {p + 1}/{passes}", leave=False)]
                for p in range(passes)]  # fmt: skip
