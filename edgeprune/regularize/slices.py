"""The weight slices of every channel (unit) of every group, gathered for vectorized norms.

A group's units own slices in several tensors (producers' out-rows, consumers' in-columns, BN gamma/beta).
:class:`GroupSlices` gathers them per tensor as one index_select, so per-unit energies are a scatter-add,
not a Python loop over channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn

from edgeprune.graph.groups import (
    CONV_IN,
    CONV_OUT,
    LINEAR_IN,
    LINEAR_OUT,
    NORM,
    PARAM,
    RNN_IN,
    ChannelGraph,
    ChannelGroup,
    rnn_input_weights,
    weight_dims,
)

OUT_KINDS = (CONV_OUT, LINEAR_OUT)
IN_KINDS = (CONV_IN, LINEAR_IN)


class DeviceIndex(NamedTuple):
    """A block's ``index`` and ``unit`` copied to its parameter's device."""

    index: torch.Tensor
    unit: torch.Tensor


@dataclass
class SliceBlock:
    """Rows ``index`` (along ``dim``) of ``param`` belong to units ``unit`` of one group."""

    name: str  # parameter name in the model
    param: nn.Parameter
    dim: int
    index: torch.Tensor  # slice positions along dim
    unit: torch.Tensor  # which unit of the group each slice belongs to
    side: str  # "out" (producer / norm) or "in" (consumer)

    def __post_init__(self) -> None:
        # Most blocks cover the whole tensor in order (a conv's out-rows in one group): then a view will do.
        n = self.param.shape[self.dim]
        self.whole = len(self.index) == n and bool((self.index == torch.arange(n)).all())
        self._device_index: DeviceIndex | None = None

    def on_device(self) -> DeviceIndex:
        """Copies of ``index`` and ``unit`` where the parameter is now (a trainer may move the model to a GPU
        after the slices were built); ``index`` and ``unit`` themselves stay on the CPU."""
        device = self.param.device
        if self._device_index is None or self._device_index.index.device != device:
            self._device_index = DeviceIndex(self.index.to(device), self.unit.to(device))
        return self._device_index

    def gather(self) -> torch.Tensor:
        """(n_slices, slice_numel) view of the current weights (a copy only for partial blocks)."""
        rows = self.param if self.whole else self.param.index_select(self.dim, self.on_device().index)
        return rows.movedim(self.dim, 0).reshape(len(self.index), -1)

    @torch.no_grad()
    def add_scaled_to_grad(self, coef: torch.Tensor) -> None:
        """grad[slice i] += coef[i] * weights[slice i]: the gradient of a penalty that is a function of each
        slice's norm, added in place without building an autograd graph."""
        shape = [1] * self.param.ndim
        shape[self.dim] = len(self.index)
        coef = coef.to(self.param.dtype).view(shape)
        rows = self.param if self.whole else self.param.index_select(self.dim, self.on_device().index)
        self._add_to_grad(rows * coef)

    @torch.no_grad()
    def add_rows_to_grad(self, rows: torch.Tensor) -> None:
        """grad[slice i] += rows[i], for ``rows`` in :meth:`gather`'s (n_slices, slice_numel) layout."""
        moved = list(self.param.movedim(self.dim, 0).shape)
        moved[0] = len(self.index)
        self._add_to_grad(rows.reshape(moved).movedim(0, self.dim))

    def _add_to_grad(self, delta: torch.Tensor) -> None:
        if self.param.grad is None:
            self.param.grad = torch.zeros_like(self.param)
        if self.whole:
            self.param.grad.add_(delta)
        else:
            self.param.grad.index_add_(self.dim, self.on_device().index, delta)


@dataclass
class GroupSlices:
    group: ChannelGroup
    blocks: list[SliceBlock]
    trainable: torch.Tensor  # bool per unit: not frozen

    def unit_energy(self, sides: tuple[str, ...] = ("out", "in")) -> torch.Tensor:
        """Sum of squares of every slice per unit (differentiable)."""
        energy = None
        for b in self.blocks:
            if b.side not in sides:
                continue
            part = torch.zeros(self.group.size, device=b.param.device, dtype=b.param.dtype)
            part = part.index_add(0, b.on_device().unit, b.gather().pow(2).sum(1))
            energy = part if energy is None else energy + part
        if energy is None:
            return torch.zeros(self.group.size)
        return energy


def _member_params(modules: dict[str, nn.Module], kind: str, path: str, dim: int) -> list[tuple[str, int, str]]:
    """(parameter name, slicing dim, side) for one member kind of one module."""
    if kind == PARAM:
        return [(path, dim, "out")]
    module = modules[path]
    grouped = isinstance(module, nn.Conv2d) and module.groups > 1
    out_dim, in_dim = weight_dims(module)
    out = []
    if kind in OUT_KINDS:
        out.append((f"{path}.weight", out_dim, "out"))
        if getattr(module, "bias", None) is not None:
            out.append((f"{path}.bias", 0, "out"))
    elif kind in IN_KINDS and not grouped:  # a grouped conv's block weights are its out-rows
        out.append((f"{path}.weight", in_dim, "in"))
    elif kind == RNN_IN:
        out += [(f"{path}.{name}", 1, "in") for name in rnn_input_weights(module)]
    elif kind == NORM and getattr(module, "weight", None) is not None:
        out += [(f"{path}.weight", 0, "out"), (f"{path}.bias", 0, "out")]
    return out


def group_slices(model: nn.Module, graph: ChannelGraph, include_frozen: bool = False) -> list[GroupSlices]:
    """Slices of every prunable group (frozen units excluded from penalties via ``trainable``)."""
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    result = []
    for group in graph.groups if include_frozen else graph.prunable_groups:
        rows: dict[tuple[str, int, str], tuple[list[int], list[int]]] = {}
        for u, unit in enumerate(group.units):
            for m in unit.members:
                for name, dim, side in _member_params(modules, m.kind, m.path, m.dim):
                    idx, owners = rows.setdefault((name, dim, side), ([], []))
                    idx.append(m.index)
                    owners.append(u)
        blocks = [
            SliceBlock(name, params[name], dim, torch.tensor(idx), torch.tensor(owners), side)
            for (name, dim, side), (idx, owners) in rows.items()
            if name in params
        ]
        trainable = torch.tensor([u.frozen is None for u in group.units])
        result.append(GroupSlices(group, blocks, trainable))
    return result
