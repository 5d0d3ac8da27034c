"""Torch-Pruning's plans at a MACs budget, for same-run comparisons in the benchmarks (the ``bench`` extra).

Torch-Pruning (1.6) prunes with its own dependency graph: magnitude importance (L2 of each group), a ratio per
layer (``uniform``) or one global threshold (``global``), widths rounded to 8. Its ratio is searched so the
pruned model keeps at most the budget's share of fvcore MACs, the count edgeprune's plans are held to.
"""

from __future__ import annotations

import copy

import torch

from edgeprune.validation import count_macs

ROUND_TO = 8
MAX_LAYER_RATIO = 0.75  # edgeprune's default cap per group, for both
RATIOS = [i / 100 for i in range(20, 76, 2)]  # up to the cap; above it Torch-Pruning skips layers


def _ignored(model: torch.nn.Module, name: str) -> list[torch.nn.Module]:
    """Layers Torch-Pruning must leave whole: the classifier, and for the CIFAR ResNets (zero-padded shortcuts
    it cannot follow) the residual streams, so it prunes what edgeprune prunes by default, the inner channels."""
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]
    if name.startswith("cifar_resnet"):
        return heads + [model.conv1] + [m for n, m in model.named_modules() if n.endswith("conv2")]
    return heads


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
