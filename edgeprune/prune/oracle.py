"""The correctness oracle: what a pruned model must compute.

A physically shrunk model must equal the original model with each removed channel's activation forced
to zero where it is consumed. The masking here uses only forward pre-hooks on the original modules, so
it shares no code with the surgery in :mod:`edgeprune.prune.shrink`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from edgeprune.graph import tree_tensors
from edgeprune.graph.errors import describe_location
from edgeprune.graph.fxtrace import locate_failure
from edgeprune.graph.groups import CONSUMER_KINDS, CONV_IN, LAST_DIM_KINDS, LINEAR_IN, RNN_IN, ChannelGraph
from edgeprune.models import create_model_for_size, get_entry
from edgeprune.prune.plan import Plan
from edgeprune.prune.shrink import removed_contribution, shrink


def consumed_removals(graph: ChannelGraph, plan: Plan) -> dict[str, tuple[str, list[int]]]:
    """Module path -> (consumer kind, input indices whose channel the plan removes)."""
    out: dict[str, tuple[str, set[int]]] = {}
    for gid, gone in plan.removed(graph).items():
        for u in gone:
            for m in graph.groups[gid].units[u].members:
                if m.kind in CONSUMER_KINDS:
                    out.setdefault(m.path, (m.kind, set()))[1].add(m.index)
    return {p: (k, sorted(idx)) for p, (k, idx) in out.items()}


@torch.no_grad()
def masked_forward(model: nn.Module, graph: ChannelGraph, plan: Plan, x: torch.Tensor,
                   means: dict[str, torch.Tensor] | None = None) -> torch.Tensor:  # fmt: skip
    """Run the *original* model with the plan's removed channels zeroed at every consumer.

    With ``means`` (consumer path -> input channel means, as shrink compensates), each consumer's output also
    gets what the removed channels add when they hold their means (a constant per output channel); a recurrent
    layer with biases, whose gates see that constant, reads the means in place of the removed features."""
    handles = []

    def add_hook(added: torch.Tensor, kind: str):
        shape = (-1,) if kind == LINEAR_IN else (-1, *[1] * (x.dim() - 2))

        def hook(module, args, out):
            return out + added.view(shape)

        return hook

    def zero_hook(kind: str, index: torch.Tensor, fill: torch.Tensor | None):
        def hook(module, args):
            inp = args[0].clone()
            value = 0 if fill is None else fill[index].to(inp.dtype)
            if kind in LAST_DIM_KINDS:
                inp[..., index] = value
            else:
                inp[:, index] = 0
            return (inp, *args[1:])

        return hook

    try:
        for path, (kind, idx) in consumed_removals(graph, plan).items():
            module = model.get_submodule(path)
            fill = means[path] if means is not None and kind == RNN_IN and module.bias else None
            handles.append(module.register_forward_pre_hook(zero_hook(kind, torch.tensor(idx), fill)))
            compensated = means is not None and kind in (CONV_IN, LINEAR_IN)  # as shrink: not a channel remap
            added = removed_contribution(module, kind, idx, means[path]) if compensated else None
            if added is not None:
                handles.append(module.register_forward_hook(add_hook(added, kind)))
        return model(x)
    finally:
        for h in handles:
            h.remove()


def liven(model: nn.Module, size: int | tuple[int, ...] = 32, seed: int = 0) -> nn.Module:
    """Random norm affines and layer scales, then BN statistics calibrated on random inputs (``size``: a square
    RGB side, or the input's shape without the batch dim: (C, H, W), a sequence's (C, L)).

    Freshly initialized torchvision models can output constants (activations that fade through depth,
    1e-6 layer scales): an oracle comparison on such a model would pass whatever the pruning did.
    """
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
                if not m.weight.any():  # zero-initialized heads (ViT) would make every output equal
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.02)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            for name, p in m.named_parameters(recurse=False):
                if "layer_scale" in name or name.startswith("gamma"):  # timm's LayerScale / EdgeNeXt: gamma
                    p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
        for m in norms:
            m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        model.train()
        shape = (3, size, size) if isinstance(size, int) else tuple(size)
        try:
            for _ in range(2):
                model(torch.randn(4, *shape, generator=gen))
        finally:  # a model that does not take that input still comes back in eval mode
            model.eval()
    return model


def lively_model(name: str, seed: int = 0) -> tuple[nn.Module, int]:
    """Registry model ``name`` at its test input side, seeded and livened: what oracle checks run on.

    Returns the eval-mode model and the input side. A model with a deploy form is livened in its training form,
    whose norms give the random weights life, then fused as it is deployed."""
    entry = get_entry(name)
    size = entry.test_size
    torch.manual_seed(seed)
    kwargs = {"reparameterize": False} if entry.deploy_form else {}
    model = liven(create_model_for_size(name, size, **kwargs), size, seed)
    return (entry.deploy_form(model).eval() if entry.deploy_form else model), size


def is_lively(model: nn.Module, x: torch.Tensor) -> bool:
    """True when every output tensor differs between two samples of ``x``, so an oracle check is meaningful."""
    with torch.no_grad():
        outputs = tree_tensors(model(x))
    return bool(outputs) and all(bool((y[0] - y[1]).norm() > 1e-3 * y.norm()) for y in outputs)


ORACLE_TOLERANCE = 1e-4


def check_shrunk(model: nn.Module, graph: ChannelGraph, plan: Plan, pruned: nn.Module, input_chw,
                 means: dict[str, torch.Tensor] | None = None) -> float:  # fmt: skip
    """Relative error of ``pruned`` against the masked original on random inputs (``means``: as shrink
    compensated); :class:`PlanError` above :data:`ORACLE_TOLERANCE`. Callers run it before writing anything.

    A model whose output does not depend on its input (random-init weights often output a constant) passes
    any surgery, so the plan is then also applied to a livened copy and checked there."""
    x = torch.randn(2, *input_chw)
    err = _checked_error(model, graph, plan, pruned, x, means)
    if not is_lively(model, x):
        lively = liven(copy.deepcopy(model).eval(), tuple(input_chw))
        if is_lively(lively, x):
            err = max(err, _checked_error(lively, graph, plan, shrink(lively, graph, plan)[0], x, None))
    return err


def _checked_error(model, graph, plan, pruned, x, means) -> float:
    from edgeprune.prune.plan import PlanError

    try:
        err = oracle_error(model, graph, plan, pruned, x, means)
    except Exception as exc:  # the shrunk model does not run: its code holds a size the graph did not tie
        where = describe_location(*locate_failure(pruned, exc))
        raise PlanError(f"the pruned model does not run{where}: {_first_line(exc)}. The model's code "
                        "computes a size from a channel count that pruning changed, in a way the channel graph "
                        "does not follow; nothing written. A --plan FILE that keeps every channel of the groups "
                        "around that module (`edgeprune graph MODEL` lists them) prunes the rest") from exc  # fmt: skip
    if not err <= ORACLE_TOLERANCE:
        raise PlanError(f"pruned model deviates from the masked original (relative error {err:.2e}); nothing written")
    return err


def oracle_error(model: nn.Module, graph: ChannelGraph, plan: Plan, pruned: nn.Module, x: torch.Tensor,
                 means: dict[str, torch.Tensor] | None = None) -> float:  # fmt: skip
    """Relative error of ``pruned`` on ``x`` against the original with the plan's channels masked: the largest
    over every output tensor (a detector's or a dict's outputs too); inf when the outputs' count or shapes
    differ (broadcasting would hide that)."""
    with torch.no_grad():
        return output_error(pruned.eval()(x), masked_forward(model, graph, plan, x, means))


def output_error(actual, expected) -> float:
    """The largest :func:`relative_error` over the output tensors of two models (a tensor, or tensors in lists,
    tuples and dicts); inf when their count or shapes differ."""
    actual, expected = tree_tensors(actual), tree_tensors(expected)
    if not expected or [a.shape for a in actual] != [e.shape for e in expected]:
        return float("inf")
    return max(relative_error(a, e) for a, e in zip(actual, expected))


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖actual − expected‖ / ‖expected‖ (with a floor so an all-zero output does not divide by zero)."""
    return float((actual - expected).norm() / expected.norm().clamp_min(1e-12))


def check_reloaded(pruned: nn.Module, folder, input_chw) -> float:
    """What was saved in ``folder`` must rebuild ``pruned``: the same outputs on random inputs (the weights are
    copied exactly), else a :class:`PlanError` (callers save inside an atomic folder: nothing is left)."""
    from edgeprune.prune.plan import PlanError
    from edgeprune.prune.serialize import load_pruned

    x = torch.randn(2, *input_chw)
    try:
        reloaded = load_pruned(folder).eval()
        with torch.no_grad():
            err = output_error(reloaded(x), pruned.eval()(x))
    except Exception as exc:
        raise PlanError(f"the pruned model does not load back from what was saved ({_first_line(exc)}); nothing "
                        "written: please report the model") from exc  # fmt: skip
    if not err <= 1e-5:
        raise PlanError(f"the pruned model loads back with other outputs (relative error {err:.2e}); nothing written: "
                        "please report the model")  # fmt: skip
    return err


def _first_line(exc: Exception) -> str:
    """``Type: first line of the message``: enough to name a failure without its traceback."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"
