"""Group-lasso regularizers on channel groups: OICSR (out-in groups) and the separated baseline."""

from __future__ import annotations

import torch
import torch.nn as nn

from edgeprune.graph.groups import ChannelGraph
from edgeprune.regularize.base import NoRegularizer, register_regularizer

EPS = 1e-12  # keeps the sqrt differentiable at exactly-zero groups


@register_regularizer("oicsr")
class OICSR(NoRegularizer):
    """OICSR group lasso (Li et al., CVPR 2019), generalized to whole channel groups.

    One group per channel c: the producers' out-slices W[c] (and BN gamma_c, beta_c) together with every
    consumer's in-slice W[:, c]. Penalty: lam * sum_c sqrt(sum of squares), optionally weighted by
    sqrt(number of weights in the group). Importance: the group's energy (out and in together).
    """

    name = "oicsr"

    def __init__(self, model: nn.Module, graph: ChannelGraph, lam: float = 1e-4, size_weighted: bool = False,
                 streams: bool = True) -> None:  # fmt: skip
        super().__init__(model, graph, streams)
        self.lam = lam
        self.weights = [self._weight(s, size_weighted) for s in self.slices]

    @staticmethod
    def _weight(s, size_weighted: bool) -> torch.Tensor:
        w = s.trainable.float()
        if size_weighted:
            sizes = torch.zeros(s.group.size)
            for b in s.blocks:
                sizes.index_add_(0, b.unit, torch.full((len(b.unit),), float(b.gather().shape[1])))
            w = w * sizes.sqrt()
        return w

    def penalty(self) -> torch.Tensor:
        total = torch.zeros(())
        for s, w in zip(self.slices, self.weights):
            total = total + (w.to(s.blocks[0].param.device) * (s.unit_energy() + EPS).sqrt()).sum()
        return self.lam * total

    @torch.no_grad()
    def add_gradient(self) -> torch.Tensor:
        """Add d(penalty)/dW to the weights' gradients in place, and return the penalty.

        d/dx of lam * w_c * sqrt(E_c) is lam * w_c * x / sqrt(E_c) for every weight x in group c. Done
        here instead of through autograd, it saves the graph of many small gathers and norms (the
        regularizer's overhead per step on ResNet-50 came mostly from that).
        """
        total = torch.zeros(())
        for s, w in zip(self.slices, self.weights):
            w = w.to(s.blocks[0].param.device)
            norm = (s.unit_energy() + EPS).sqrt()
            total = total + (w * norm).sum()
            coef = self.lam * w / norm
            for b in s.blocks:
                b.add_scaled_to_grad(coef[b.on_device().unit])
        return self.lam * total


@register_regularizer("group_lasso")
class SeparatedGroupLasso(OICSR):
    """The paper's ablation: out-filters and in-channels penalized as separate groups, layer by layer.

    Importance is the out-filter energy alone, as a layer-by-layer method would see it.
    """

    name = "group_lasso"

    def penalty(self) -> torch.Tensor:
        total = torch.zeros(())
        for s, w in zip(self.slices, self.weights):
            w = w.to(s.blocks[0].param.device)
            for b in s.blocks:
                if b.param.ndim < 2:  # biases and BN affine ride along with their filter in this view
                    continue
                norms = (b.gather().pow(2).sum(1) + EPS).sqrt()
                total = total + (w[b.on_device().unit] * norms).sum()
        return self.lam * total

    @torch.no_grad()
    def add_gradient(self) -> torch.Tensor:
        """As OICSR's, with one norm per slice: lam * w_c * x / ||slice||."""
        total = torch.zeros(())
        for s, w in zip(self.slices, self.weights):
            w = w.to(s.blocks[0].param.device)
            for b in s.blocks:
                if b.param.ndim < 2:
                    continue
                norms = (b.gather().pow(2).sum(1) + EPS).sqrt()
                wb = w[b.on_device().unit]
                total = total + (wb * norms).sum()
                b.add_scaled_to_grad(self.lam * wb / norms)
        return self.lam * total

    def importance(self) -> dict[int, torch.Tensor]:
        with torch.no_grad():
            return {s.group.id: s.unit_energy(("out",)).detach().cpu() for s in self.slices}


@register_regularizer("slimming")
class NetworkSlimming(NoRegularizer):
    """Network Slimming (Liu et al., 2017): L1 on batch-norm gammas; importance = |gamma|."""

    name = "slimming"

    def __init__(self, model: nn.Module, graph: ChannelGraph, lam: float = 1e-4, streams: bool = True) -> None:
        super().__init__(model, graph, streams)
        self.lam = lam
        bn_gammas = {
            f"{path}.weight"
            for path, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None
        }
        self.gammas = [[b for b in s.blocks if b.name in bn_gammas] for s in self.slices]

    def penalty(self) -> torch.Tensor:
        total = torch.zeros(())
        for s, blocks in zip(self.slices, self.gammas):
            for b in blocks:
                total = total + (s.trainable[b.unit].to(b.param.device) * b.gather().abs().sum(1)).sum()
        return self.lam * total

    def importance(self) -> dict[int, torch.Tensor]:
        out = {}
        with torch.no_grad():
            for s, blocks in zip(self.slices, self.gammas):
                score = torch.zeros(s.group.size)
                for b in blocks:
                    score.index_add_(0, b.unit, b.gather().abs().sum(1).cpu())
                out[s.group.id] = score
        return out
