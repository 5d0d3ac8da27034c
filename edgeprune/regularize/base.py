"""The Regularizer protocol and registry: every regularizer is defined on channel groups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn as nn

from edgeprune.errors import UnknownNameError
from edgeprune.graph.groups import ChannelGraph


class Regularizer(Protocol):
    """A structured-sparsity term for training, and the per-channel importance it implies."""

    name: str

    def penalty(self) -> torch.Tensor:
        """The term whose gradient joins the task loss's at every step (differentiable w.r.t. the weights)."""

    def after_step(self, step: int) -> None:
        """Called after each optimizer step (AULM's proximal and multiplier updates)."""

    def importance(self) -> dict[int, torch.Tensor]:
        """Group id -> one score per unit (higher = keep)."""

    def state_dict(self) -> dict:
        """Everything needed to resume exactly (AULM's F and Y)."""

    def load_state_dict(self, state: dict) -> None: ...

    # Optional: ``add_gradient() -> Tensor`` adds d(penalty)/dW to the gradients in place after the task
    # loss's backward and returns the penalty's value; without it, SparsityHook takes the penalty's gradient
    # through autograd. Either way the penalty is never part of the task loss.


def add_penalty_gradient(reg: Regularizer) -> torch.Tensor | None:
    """After backward: add an analytic regularizer's gradient; returns its penalty (None: it has no add_gradient)."""
    add = getattr(reg, "add_gradient", None)
    return None if add is None else add()


_REGISTRY: dict[str, Callable[..., Regularizer]] = {}


def register_regularizer(name: str):
    def wrap(factory):
        _REGISTRY[name] = factory
        return factory

    return wrap


def list_regularizers() -> list[str]:
    return sorted(_REGISTRY)


def create_regularizer(name: str, model: nn.Module, graph: ChannelGraph, **kwargs) -> Regularizer:
    """Build a registered regularizer (see :func:`list_regularizers`) for ``model``'s groups."""
    if name not in _REGISTRY:
        raise UnknownNameError(f"unknown regularizer {name!r}; known: {', '.join(list_regularizers())}")
    return _REGISTRY[name](model, graph, **kwargs)


class NoRegularizer:
    """Plain training / fine-tuning: no penalty; importance falls back to weight energy."""

    name = "none"

    def __init__(self, model: nn.Module, graph: ChannelGraph, streams: bool = True, **_: object) -> None:
        from edgeprune.regularize.slices import group_slices

        # streams=False leaves residual streams (groups several layers write to) out of the penalty and the
        # importance: when the planner keeps them whole, shrinking their weights only costs accuracy.
        self.slices = [s for s in group_slices(model, graph) if streams or not s.group.shared]

    def penalty(self) -> torch.Tensor:
        return torch.zeros(())

    def after_step(self, step: int) -> None:
        pass

    def importance(self) -> dict[int, torch.Tensor]:
        with torch.no_grad():
            return {s.group.id: s.unit_energy().detach().cpu() for s in self.slices}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


register_regularizer("none")(NoRegularizer)
