"""A sparsity hook for any training loop: the regularizer's two calls per step, its importance and its state.

Your loop keeps its model, optimizer, loss and data; the hook adds the structured-sparsity term::

    hook = SparsityHook(model, example_batch, "oicsr", 1e-4)
    ...
    loss.backward()
    hook.after_backward()      # adds d(penalty)/dW to the gradients
    optimizer.step()
    hook.after_step()          # AULM's proximal and multiplier updates (SSR); a no-op for OICSR
    ...
    hook.save("runs/mine", "cifar_resnet20")   # then: edgeprune prune runs/mine --target ...

The built-in trainer (edgeprune.train.trainer) drives the same object.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn

from edgeprune.errors import InputError
from edgeprune.graph import build_graph
from edgeprune.graph.groups import ChannelGraph
from edgeprune.regularize.base import NoRegularizer, Regularizer, add_penalty_gradient, create_regularizer


class HookOrderError(InputError):
    """The loop calls the hook out of order (e.g. SSR's after_step() forgotten)."""


class SparsityHook:
    """Structured-sparsity regularization for a training loop you own.

    Args:
        model: the network being trained (the hook holds its parameters, not a copy).
        example: an input batch to trace the model's channel groups with (only its shape and dtype matter).
        method: a registered regularizer (``edgeprune.regularize.list_regularizers()``): ``oicsr``,
            ``group_lasso``, ``slimming``, ``ssr_l21``, ``ssr_l20`` or ``none``.
        strength: the regularizer's ``lam``.
        **options: further settings of the regularizer (``streams``, ``size_weighted``, SSR's ``rho``/``every``).

    Call :meth:`after_backward` once per optimizer step, after the last ``backward()`` (with AMP, after
    ``scaler.unscale_(optimizer)``), and :meth:`after_step` after ``optimizer.step()``. Methods that keep
    state between steps (SSR's AULM) need :meth:`after_step`: a loop that forgets it gets a
    :class:`HookOrderError` at the next :meth:`after_backward`.
    """

    def __init__(self, model: nn.Module, example: torch.Tensor, method: str = "oicsr", strength: float = 1e-4,
                 **options) -> None:  # fmt: skip
        graph = build_graph(model, example)
        self._attach(model, graph, create_regularizer(method, model, graph, lam=strength, **options))

    @classmethod
    def from_graph(cls, model: nn.Module, graph: ChannelGraph, method: str = "oicsr", **options) -> SparsityHook:
        """A hook on a graph built already (e.g. with ``freeze_unknown``); ``options`` go to the regularizer
        as they are (its strength is ``lam``)."""
        hook = cls.__new__(cls)
        hook._attach(model, graph, create_regularizer(method, model, graph, **options))
        return hook

    @classmethod
    def wrap(cls, model: nn.Module, regularizer: Regularizer, graph: ChannelGraph | None = None) -> SparsityHook:
        """A hook around a regularizer built already (:meth:`save` needs ``graph``)."""
        hook = cls.__new__(cls)
        hook._attach(model, graph, regularizer)
        return hook

    def _attach(self, model: nn.Module, graph: ChannelGraph | None, regularizer: Regularizer) -> None:
        self.model, self.graph, self.regularizer = model, graph, regularizer
        self.step = 0  # optimizer steps seen by after_step: the AULM schedule counts them
        self._pending = False  # after_backward ran and its after_step has not
        # a method whose after_step does something must get it after every step
        step_fn = getattr(type(regularizer), "after_step", None)
        self.needs_step = step_fn is not None and step_fn is not NoRegularizer.after_step

    @property
    def name(self) -> str:
        return self.regularizer.name

    @property
    def pending(self) -> bool:
        """after_backward() ran and the after_step() that should follow it has not."""
        return self._pending

    def after_backward(self) -> torch.Tensor:
        """Add the penalty's gradient to the parameters' ``.grad``; returns the penalty's value (detached).

        Analytic regularizers add theirs in place; the others go through autograd on the penalty alone, so
        the task loss never has to include it.
        """
        if self._pending and self.needs_step:
            raise HookOrderError(
                f"{self.name}: after_backward() called twice without after_step(): call hook.after_step() after "
                "every optimizer.step() (its proximal and multiplier updates run there), and after_backward() "
                "once per optimizer step"
            )
        self._pending = True
        value = add_penalty_gradient(self.regularizer)
        if value is not None:
            return value.detach()
        penalty = self.regularizer.penalty()
        if penalty.requires_grad:
            params = [p for p in self.model.parameters() if p.requires_grad]
            for p, g in zip(params, torch.autograd.grad(penalty, params, allow_unused=True)):
                if g is not None:
                    p.grad = g if p.grad is None else p.grad.add_(g)
        return penalty.detach()

    def after_step(self) -> None:
        """After ``optimizer.step()``: the regularizer's per-step update (AULM's proximal and multiplier steps)."""
        if not self._pending and self.needs_step:
            raise HookOrderError(f"{self.name}: after_step() without after_backward(): call hook.after_backward() "
                                 "after loss.backward() and before optimizer.step()")  # fmt: skip
        self.regularizer.after_step(self.step)
        self.step += 1
        self._pending = False

    @torch.no_grad()
    def penalty(self) -> torch.Tensor:
        """The penalty's current value, for logging."""
        return self.regularizer.penalty().detach()

    def importance(self) -> dict[int, torch.Tensor]:
        """Group id -> one score per channel (higher = keep): what the planner ranks channels by."""
        return self.regularizer.importance()

    def state_dict(self) -> dict:
        """Everything to resume exactly (the step count and the regularizer's state, e.g. AULM's F and Y)."""
        return {"step": self.step, "regularizer": self.regularizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.regularizer.load_state_dict(state["regularizer"])
        self._pending = False

    def save(self, folder: str | os.PathLike, model_name: str, model_kwargs: dict | None = None,
             changes: dict | None = None, input_size: tuple[int, ...] | None = None) -> Path:  # fmt: skip
        """Write what ``edgeprune prune FOLDER`` needs: ``model/`` (arch.json + weights.safetensors) and
        ``importance.json`` (the training-run layout).

        ``model_name`` (a registry name or ``pkg.module:factory``) and ``model_kwargs`` rebuild the
        architecture; ``changes`` are the arch changes when the model was itself pruned already;
        ``input_size`` (C, H, W) is recorded when the model was trained at another size than the registry's.
        """
        # prune and plan come before this stage; imported here so that `import edgeprune.regularize` stays light
        from edgeprune.atomic import atomic_write_text
        from edgeprune.plan.run import IMPORTANCE_FILE
        from edgeprune.prune import arch_spec, save_pruned

        if self.graph is None:
            raise InputError("this hook was built without a channel graph: build it with SparsityHook(model, "
                             "example, ...) or SparsityHook.from_graph to save it")  # fmt: skip
        out = Path(folder)
        fingerprint = self.graph.fingerprint
        # safetensors copies device tensors to the host itself: the model stays where it trains
        spec = arch_spec(model_name, model_kwargs or {}, fingerprint, changes or {}, input_size)
        save_pruned(self.model, spec, out / "model")
        groups = {str(g): [float(v) for v in s] for g, s in self.importance().items()}
        record = {"regularizer": self.name, "fingerprint": fingerprint, "groups": groups}
        atomic_write_text(out / IMPORTANCE_FILE, json.dumps(record))
        return out
