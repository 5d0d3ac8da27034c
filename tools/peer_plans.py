"""Torch-Pruning's plans at a MACs budget, for same-run comparisons in the benchmarks (the ``bench`` extra).

Torch-Pruning (1.6) prunes with its own dependency graph: magnitude importance (L2 of each group), a ratio per
layer (``uniform``) or one global threshold (``global``), widths rounded to 8. Its ratio is searched so the
pruned model keeps at most the budget's share of fvcore MACs, the count edgeprune's plans are held to.

An Ultralytics detector is pruned as Torch-Pruning's users prune one: its C2f / C3k2 blocks rewritten with the
first conv as two (Torch-Pruning's graph cannot follow their ``chunk``: on YOLOv8n it fails with an index past a
conv's width), the head's output convs and the DFL left whole.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from edgeprune.validation import count_macs

ROUND_TO = 8
MAX_LAYER_RATIO = 0.75  # edgeprune's default cap per group, for both
RATIOS = [i / 100 for i in range(20, 76, 2)]  # up to the cap; above it Torch-Pruning skips layers


def _ignored(model: torch.nn.Module, name: str) -> list[torch.nn.Module]:
    """Layers Torch-Pruning must leave whole: the classifier (a detector: the head's output convs and the DFL), and
    for the CIFAR ResNets (zero-padded shortcuts it cannot follow) the residual streams, so it prunes what edgeprune
    prunes by default, the inner channels."""
    if is_yolo(model):
        head = model.model.model[-1]
        stacks = [getattr(head, f"cv{k}") for k in (2, 3, 4) if hasattr(head, f"cv{k}")]
        return [branch[-1] for stack in stacks for branch in stack] + [head.dfl]
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]
    if name.startswith("cifar_resnet"):
        return heads + [model.conv1] + [m for n, m in model.named_modules() if n.endswith("conv2")]
    return heads


def is_yolo(model: nn.Module) -> bool:
    """An Ultralytics detector as edgeprune builds it (``YoloRaw``; the module imports Ultralytics only on use)."""
    from edgeprune.models.ultralytics_models import YoloRaw

    return isinstance(model, YoloRaw)


def _half(conv: nn.Module, part: slice) -> nn.Module:
    """A copy of an Ultralytics ``Conv`` (conv, batch norm, activation) computing only the output channels ``part``."""
    half = copy.deepcopy(conv)
    half.conv.weight = nn.Parameter(conv.conv.weight.detach()[part].clone())
    half.conv.out_channels = half.conv.weight.shape[0]
    for key in ("weight", "bias"):
        setattr(half.bn, key, nn.Parameter(getattr(conv.bn, key).detach()[part].clone()))
    half.bn.running_mean, half.bn.running_var = conv.bn.running_mean[part].clone(), conv.bn.running_var[part].clone()
    half.bn.num_features = half.conv.out_channels
    return half


class SplitCSP(nn.Module):
    """A C2f / C3k2 block whose first conv is two convs, one per half of its output: the same function."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.first, self.second = _half(block.cv1, slice(0, block.c)), _half(block.cv1, slice(block.c, 2 * block.c))
        self.m, self.cv2 = block.m, block.cv2
        for key in ("f", "i", "type", "np"):  # what the Ultralytics layer list reads off each layer
            setattr(self, key, getattr(block, key))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.first(x), self.second(x)]
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


def split_csp(model: nn.Module) -> nn.Module:
    """A copy of the ``YoloRaw`` ``model`` with every C2f-style block (C2f, C3k2) as a :class:`SplitCSP`, its
    parameters trainable (Ultralytics loads them frozen; Torch-Pruning traces its graph through autograd)."""
    from ultralytics.nn.modules.block import C2f

    out = copy.deepcopy(model).eval()
    layers = out.model.model
    for i, layer in enumerate(layers):
        if isinstance(layer, C2f) and type(layer).forward is C2f.forward:
            layers[i] = SplitCSP(layer)
    return out.requires_grad_(True)


def _pruned(model: torch.nn.Module, name: str, shape: tuple[int, ...], ratio: float, global_: bool):
    import torch_pruning as tp

    m = copy.deepcopy(model).eval()
    pruner = tp.pruner.MagnitudePruner(
        m, torch.randn(*shape), importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=ratio,
        global_pruning=global_, round_to=ROUND_TO, max_pruning_ratio=MAX_LAYER_RATIO,
        ignored_layers=_ignored(m, name),
    )  # fmt: skip
    pruner.step()
    return m.eval()


def torch_pruning_plans(model: torch.nn.Module, name: str, shape: tuple[int, ...], macs_fraction: float,
                        failed: dict[str, str] | None = None) -> dict[str, torch.nn.Module]:  # fmt: skip
    """``{"Torch-Pruning uniform": model, "Torch-Pruning global": model}``, each at the ratio whose MACs come
    nearest ``macs_fraction`` of the dense model's. With the per-layer cap and rounding to 8, Torch-Pruning's
    MACs are not monotone in its ratio and may not reach the fraction exactly (ResNet-56: 0.504 at best for
    0.5), so the ratios are scanned rather than bisected; the table reports each plan's own MACs.

    ``failed``: where Torch-Pruning raises on the model, its error is recorded here under the plan's label and
    the plan left out (without it, the error propagates)."""
    x = torch.randn(*shape)
    dense = count_macs(model, x)[0]
    if is_yolo(model):
        split = split_csp(model)
        with torch.no_grad():
            assert torch.allclose(split(x), model(x), rtol=1e-4, atol=1e-4), "the split blocks compute otherwise"
        model = split
    out = {}
    for label, global_ in (("Torch-Pruning uniform", False), ("Torch-Pruning global", True)):
        scanned = []
        try:
            for ratio in RATIOS:
                m = _pruned(model, name, shape, ratio, global_)
                scanned.append((abs(count_macs(m, x)[0] / dense - macs_fraction), ratio, m))
        except Exception as exc:  # the peer's own failure on this model is a result, not a crash of the run
            if failed is None:
                raise
            failed[label] = f"{type(exc).__name__}: {exc}"
            continue
        out[label] = min(scanned, key=lambda t: t[:2])[2]
    return out
