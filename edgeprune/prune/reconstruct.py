"""Refit the layers that read removed channels (or a sum a removed branch fed) so that they compute what the
unpruned model computed.

Folding a removed channel's mean into the next layer keeps the constant it carried; what varied is lost. Much
of it is still there in the kept channels, which are correlated with the removed ones. For each layer that
reads removed channels (a conv with ``groups == 1``, or a linear), in the order the model runs them, the kept
weights and the bias are refitted by least squares so that the layer's output on the *pruned* model's inputs
matches the *unpruned* model's output on calibration images (He et al., ICCV 2017, without their LASSO channel
choice: the planner chose the channels). Later layers are fitted on the inputs of the already refitted earlier
ones, so errors do not add up along the network.

Only the weights change: the pruned model's architecture and its saved spec stay as shrink made them. Ridge
regularization (relative to the inputs' mean power) keeps a layer whose kept inputs are nearly collinear from
taking huge weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeprune.errors import InputError
from edgeprune.graph.groups import CONV_IN, CONV_OUT, LINEAR_IN, LINEAR_OUT, ChannelGraph
from edgeprune.prune.plan import Plan
from edgeprune.prune.shrink import removed_slices

SAMPLES_PER_IMAGE = 512  # output positions (a conv's pixels, a linear's tokens) per image and layer in a fit
RIDGE = 1e-3  # relative to the mean diagonal of the inputs' Gram matrix


@dataclass(frozen=True)
class Refit:
    """One refitted layer: its output error relative to the unpruned model's, on the calibration images, before
    and after the refit (root mean square over the fitted positions, over that of the unpruned output)."""

    path: str
    before: float
    after: float


class _Stop(BaseException):  # not Exception: model code that catches those must not swallow it
    """Raised by a hook once the layer it watches has run: the rest of the forward pass is not needed."""


def _positions(module: nn.Module, t: torch.Tensor, is_input: bool) -> torch.Tensor:
    """``t`` (a layer's input or output) as (N, positions, features): a conv's input as unfolded patches, one per
    output position; a linear's leading dims after the batch as positions (one, for a plain (N, F) input)."""
    if isinstance(module, nn.Conv2d):
        if is_input:
            return F.unfold(t, module.kernel_size, module.dilation, module.padding, module.stride).transpose(1, 2)
        return t.flatten(2).transpose(1, 2)
    return t.reshape(t.shape[0], -1, t.shape[-1])


def _rows(module: nn.Module, t: torch.Tensor, is_input: bool, pick: torch.Tensor) -> torch.Tensor:
    """The fitted positions of ``t`` as rows: image-major, ``pick`` within each image."""
    per = _positions(module, t, is_input)
    return per[:, pick].reshape(-1, per.shape[-1])


def _fittable(path: str, dense: nn.Module, pruned: nn.Module) -> bool:
    try:
        d, p = dense.get_submodule(path), pruned.get_submodule(path)
    except AttributeError:  # replaced with a constant when its branch was removed
        return False
    if isinstance(p, nn.Conv2d) and isinstance(d, nn.Conv2d):  # unfold takes numeric zero padding only
        return p.groups == 1 and d.groups == 1 and p.padding_mode == "zeros" and not isinstance(p.padding, str)
    return isinstance(p, nn.Linear) and isinstance(d, nn.Linear)


def _branch_readers(graph: ChannelGraph, plan: Plan) -> list[str]:
    """The layers reading a sum that a removed residual branch was added to: their channels are all kept, but
    what flows in changed (the branch's constant for its output), so they are refitted too."""
    tails = {graph.branches[g].tail for g, keep in plan.keep.items() if g in graph.branches and not keep}
    out: list[str] = []
    for group in graph.groups:
        members = [m for u in group.units for m in u.members]
        if any(m.path in tails and m.kind == CONV_OUT for m in members):
            out += [m.path for m in members if m.kind in (CONV_IN, LINEAR_IN) and m.path not in tails]
    return list(dict.fromkeys(out))


def _run_order(model: nn.Module, paths: list[str], x: torch.Tensor) -> list[str]:
    """``paths`` in the order ``model`` runs them on ``x``."""
    seen: list[str] = []
    handles = [model.get_submodule(p).register_forward_pre_hook(lambda m, a, p=p: seen.append(p)) for p in paths]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return list(dict.fromkeys(seen))


def refit_layers(dense: nn.Module, pruned: nn.Module, graph: ChannelGraph, plan: Plan, images: torch.Tensor,
                 batch_size: int = 8, seed: int = 0) -> list[Refit]:  # fmt: skip
    """Refit, in place, ``pruned``'s layers that read channels ``plan`` removed (see the module docstring), on
    ``images`` (N, C, H, W, as the models take them). ``dense`` is the model ``plan`` was made for; it is not
    changed. Returns each layer's output error before and after, in run order."""
    if images.dim() < 2 or len(images) == 0:
        raise InputError(f"refitting needs a batch of calibration images; got shape {tuple(images.shape)}")
    removed = removed_slices(graph, plan)
    readers = [p for p, kinds in removed.items() if CONV_IN in kinds or LINEAR_IN in kinds]
    paths = [p for p in dict.fromkeys(readers + _branch_readers(graph, plan)) if _fittable(p, dense, pruned)]
    if not paths:
        return []
    modes = dense.training, pruned.training
    dense.eval()
    pruned.eval()
    try:
        batches = list(images.float().split(batch_size))
        paths = _run_order(dense, paths, batches[0][:1])
        targets = _dense_outputs(dense, paths, removed, batches, seed)
        # a layer that runs more than once per forward pass (shared) has no single output to match
        return [_refit_one(pruned, p, batches, targets[p]) for p in paths if len(targets[p]) == len(batches)]
    finally:
        dense.train(modes[0])
        pruned.train(modes[1])


def _dense_outputs(dense: nn.Module, paths: list[str], removed: dict, batches: list[torch.Tensor], seed: int
                   ) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:  # fmt: skip
    """Per layer and batch: the output positions drawn for the fit and the unpruned layer's output there (its
    kept output channels only), in one pass of the unpruned model."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, list] = {p: [] for p in paths}

    def grab(path: str):
        kinds = removed[path]
        gone = kinds.get(CONV_OUT, set()) | kinds.get(LINEAR_OUT, set())

        def hook(module, args, y):
            positions = _positions(module, y, False).shape[1]
            pick = torch.randperm(positions, generator=gen)[:SAMPLES_PER_IMAGE]
            rows = _rows(module, y, False, pick)
            keep = [c for c in range(rows.shape[1]) if c not in gone]
            out[path].append((pick, rows[:, keep]))  # float32 until fitted: these are held for every layer

        return hook

    handles = [dense.get_submodule(p).register_forward_hook(grab(p)) for p in paths]
    try:
        with torch.no_grad():
            for batch in batches:
                dense(batch)
    finally:
        for h in handles:
            h.remove()
    return out


class _Normal:
    """Sums for a least-squares fit of outputs ``y`` on rows ``a``: A'A, A'y, |y|^2 and the current error."""

    def __init__(self) -> None:
        self.gram = self.cross = None
        self.power = self.error = 0.0

    def add(self, a: torch.Tensor, y: torch.Tensor, now: torch.Tensor) -> None:
        self.gram = a.T @ a if self.gram is None else self.gram + a.T @ a
        self.cross = a.T @ y if self.cross is None else self.cross + a.T @ y
        self.power += y.pow(2).sum().item()
        self.error += (now - y).pow(2).sum().item()

    def error_of(self, w: torch.Tensor) -> float:
        """|A w - y|^2 from the sums alone."""
        return max((w * (self.gram @ w)).sum().item() - 2 * (w * self.cross).sum().item() + self.power, 0.0)


def _solve(gram: torch.Tensor, cross: torch.Tensor, n: int) -> torch.Tensor:
    """Ridge solution; the first ``n`` unknowns are weights (shrunk), a last one the bias (not shrunk)."""
    reg = torch.zeros_like(gram)
    reg.diagonal()[:n] = RIDGE * gram.diagonal()[:n].mean().clamp_min(1e-12)
    return torch.linalg.solve(gram + reg, cross)


def _refit_one(pruned: nn.Module, path: str, batches: list[torch.Tensor], targets: list) -> Refit:
    """Least-squares refit of one layer of ``pruned`` (weights and bias) against the unpruned outputs, fitted on
    three images in four and kept only if it also lowers the error on the fourth (a layer with more weights than
    the images constrain would otherwise fit noise); the kept fit is then redone on every image."""
    module = pruned.get_submodule(path)
    has_bias = module.bias is not None  # a layer without one is fitted without: its architecture stays
    fit, check = _Normal(), _Normal()
    current: dict[str, torch.Tensor] = {}

    def catch(m, args):
        if "x" not in current:  # not when the layer is called below on the captured input
            current["x"] = args[0]
            raise _Stop

    handle = module.register_forward_pre_hook(catch)
    try:
        with torch.no_grad():
            first = 0  # index of the batch's first image
            for batch, (pick, y) in zip(batches, targets):
                try:
                    pruned(batch)
                except _Stop:
                    pass
                if "x" not in current:  # it ran in the unpruned model but not in this one
                    return Refit(path, float("nan"), float("nan"))
                x = current["x"]
                rows = _rows(module, x, True, pick).double()
                ones = torch.ones(rows.shape[0], 1, dtype=rows.dtype, device=rows.device)
                a = torch.cat([rows, ones], 1) if has_bias else rows
                now = _rows(module, module(x), False, pick).double()
                y = y.double()
                del current["x"]
                image = torch.arange(first, first + len(batch), device=rows.device)  # rows are image-major
                held = (image % 4 == 3).repeat_interleave(rows.shape[0] // len(batch))
                fit.add(a[~held], y[~held], now[~held])
                if held.any():
                    check.add(a[held], y[held], now[held])
                first += len(batch)
    finally:
        handle.remove()
    power = max(fit.power + check.power, 1e-30)
    before = ((fit.error + check.error) / power) ** 0.5
    n = fit.gram.shape[0] - int(has_bias)
    if before < 1e-6:  # upstream of every change: already exact
        return Refit(path, before, before)
    if check.gram is None or check.error_of(_solve(fit.gram, fit.cross, n)) >= check.error:
        return Refit(path, before, before)  # no held-out image (under 4), or it does not generalize: left as it was
    solution = _solve(fit.gram + check.gram, fit.cross + check.cross, n)  # (n [+ 1], out), on every image
    with torch.no_grad():
        module.weight.copy_(solution[:n].T.reshape(module.weight.shape).to(module.weight.dtype))
        if has_bias:
            module.bias.copy_(solution[n].to(module.bias.dtype))
    return Refit(path, before, ((fit.error_of(solution) + check.error_of(solution)) / power) ** 0.5)
