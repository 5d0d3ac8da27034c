"""SSR (Lin et al., TNNLS 2020): L2,1 / L2,0 structured sparsity solved by AULM (ADMM style).

Per channel group, an auxiliary F and a multiplier Y shadow the weights. W-step: SGD on
loss + rho/2 * ||W - F + Y/rho||^2 (the penalty below). Every ``every`` steps: F = prox(W + Y/rho), a
group soft threshold by lam/rho (L2,1) or a group hard threshold keeping units with ||.||^2 > 2 lam/rho
(L2,0); then Y <- Y + rho (W - F). Channels whose F is exactly zero are the ones to prune.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from edgeprune.errors import InputError
from edgeprune.graph.groups import ChannelGraph
from edgeprune.regularize.base import NoRegularizer, register_regularizer


class SSR(NoRegularizer):
    norm = "l21"

    def __init__(
        self,
        model: nn.Module,
        graph: ChannelGraph,
        lam: float = 1e-4,
        rho: float = 1e-2,
        every: int = 10,
        groups: str = "out",
        streams: bool = True,
    ) -> None:
        super().__init__(model, graph, streams)
        if groups not in ("out", "out-in"):
            raise InputError(f"SSR groups must be 'out' (filters, as in the paper) or 'out-in', got {groups!r}")
        self.lam, self.rho, self.every = lam, rho, every
        sides = ("out",) if groups == "out" else ("out", "in")
        # The filter matrices (and, for out-in, the consumers' columns); biases and BN stay unregularized.
        self.blocks = [[b for b in s.blocks if b.side in sides and b.param.ndim >= 2] for s in self.slices]
        with torch.no_grad():
            self.F = [[b.gather().detach().clone() for b in blocks] for blocks in self.blocks]
            self.Y = [[torch.zeros_like(f) for f in fs] for fs in self.F]

    @property
    def name(self) -> str:
        return f"ssr_{self.norm}"

    def _follow_weights(self) -> None:
        """Keep F and Y on the weights' device: the model may move (trainer, Lightning) after this is built."""
        for blocks, fs, ys in zip(self.blocks, self.F, self.Y):
            for i, b in enumerate(blocks):
                if fs[i].device != b.param.device:
                    fs[i], ys[i] = fs[i].to(b.param.device), ys[i].to(b.param.device)

    def penalty(self) -> torch.Tensor:
        self._follow_weights()
        total = torch.zeros(())
        for blocks, fs, ys in zip(self.blocks, self.F, self.Y):
            for b, f, y in zip(blocks, fs, ys):
                total = total + (b.gather() - f + y / self.rho).pow(2).sum()
        return 0.5 * self.rho * total

    @torch.no_grad()
    def add_gradient(self) -> torch.Tensor:
        """Add the W-step penalty's gradient, rho * (W - F + Y/rho) per slice, in place; return the penalty."""
        self._follow_weights()
        total = torch.zeros(())
        for blocks, fs, ys in zip(self.blocks, self.F, self.Y):
            for b, f, y in zip(blocks, fs, ys):
                diff = b.gather() - f + y / self.rho
                total = total + diff.pow(2).sum()
                b.add_rows_to_grad(self.rho * diff)
        return 0.5 * self.rho * total

    def _threshold(self, norms_sq: torch.Tensor) -> torch.Tensor:
        """Per-unit scale applied to V = W + Y/rho."""
        if self.norm == "l21":
            return (1 - (self.lam / self.rho) / norms_sq.sqrt().clamp_min(1e-12)).clamp_min(0)
        return (norms_sq > 2 * self.lam / self.rho).to(norms_sq.dtype)

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        if (step + 1) % self.every:
            return
        self._follow_weights()
        for s, blocks, fs, ys in zip(self.slices, self.blocks, self.F, self.Y):
            if not blocks:
                continue
            vs = [b.gather() + y / self.rho for b, y in zip(blocks, ys)]
            norms_sq = torch.zeros(s.group.size, device=vs[0].device, dtype=vs[0].dtype)
            for b, v in zip(blocks, vs):
                norms_sq.index_add_(0, b.on_device().unit, v.pow(2).sum(1))
            scale = self._threshold(norms_sq)
            scale = torch.where(s.trainable.to(scale.device), scale, torch.ones_like(scale))  # frozen: no prox
            for b, v, f, y in zip(blocks, vs, fs, ys):
                f.copy_(v * scale[b.on_device().unit][:, None])
                y.add_(self.rho * (b.gather() - f))

    def importance(self) -> dict[int, torch.Tensor]:
        out = {}
        for s, blocks, fs in zip(self.slices, self.blocks, self.F):
            score = torch.zeros(s.group.size)
            for b, f in zip(blocks, fs):
                score.index_add_(0, b.unit, f.pow(2).sum(1).cpu())
            out[s.group.id] = score.sqrt()
        return out

    def zero_units(self) -> int:
        """Prunable units whose F is exactly zero."""
        return sum(int(((v == 0) & s.trainable).sum()) for s, v in zip(self.slices, self.importance().values()))

    def state_dict(self) -> dict:
        return {"F": [[f.cpu() for f in fs] for fs in self.F], "Y": [[y.cpu() for y in ys] for ys in self.Y]}

    def load_state_dict(self, state: dict) -> None:
        for dst, src in ((self.F, state["F"]), (self.Y, state["Y"])):
            for d_list, s_list in zip(dst, src):
                for d, s in zip(d_list, s_list):
                    d.copy_(s)


@register_regularizer("ssr_l21")
class SSRL21(SSR):
    norm = "l21"


@register_regularizer("ssr_l20")
class SSRL20(SSR):
    norm = "l20"
