"""Knowledge distillation from the unpruned model: what a pruned model fine-tunes on when labels are scarce.

The loss is Hinton et al.'s: KL divergence between the teacher's and the student's softened class
distributions at temperature T, scaled by T² so its gradients keep their size as T changes. With labels,
``weight`` mixes it with cross-entropy; label-free, it is the whole loss (the user's images suffice).
Optionally the student's penultimate features (the input of its last linear layer) are matched to the
teacher's by mean squared error, when a plan kept their width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeprune.errors import InputError


@dataclass(frozen=True)
class DistillConfig:
    """How to learn from a teacher: ``teacher`` is a model reference (registry name: its pretrained weights;
    or a training run / pruned folder)."""

    teacher: str
    temperature: float = 4.0
    weight: float = 0.9  # share of the distillation term when labels are used (the rest: cross-entropy)
    labels: bool = True  # False: label-free, the teacher's outputs are the only target
    feature_weight: float = 0.0  # > 0: also match the penultimate features (MSE)

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise InputError(f"distillation temperature must be > 0, got {self.temperature}")
        if not 0 <= self.weight <= 1:
            raise InputError(f"distillation weight must be in [0, 1], got {self.weight}")
        if self.feature_weight < 0:
            raise InputError(f"feature weight must be >= 0, got {self.feature_weight}")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(teacher / T) ‖ softmax(student / T)), averaged over the batch."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * t * t  # fmt: skip


def last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InputError("feature distillation matches the input of the model's last linear layer; it has none")
    return linears[-1]


class Distiller:
    """Computes the training loss of a student against a frozen teacher (and the labels, when used)."""

    def __init__(self, teacher: nn.Module, cfg: DistillConfig, student: nn.Module) -> None:
        self.teacher, self.cfg = teacher.eval(), cfg
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self._features: dict[str, torch.Tensor] = {}
        if cfg.feature_weight > 0:
            s, t = last_linear(student), last_linear(self.teacher)
            if s.in_features != t.in_features:
                raise InputError(f"feature distillation needs the same penultimate width; the student has "
                                 f"{s.in_features}, the teacher {t.in_features} (the plan pruned it)")  # fmt: skip
            s.register_forward_hook(self._keep("student"))
            t.register_forward_hook(self._keep("teacher"))

    def _keep(self, key: str):
        def hook(module, args, output):
            self._features[key] = args[0]

        return hook

    def to(self, device: torch.device) -> Distiller:
        self.teacher.to(device)
        return self

    def loss(self, student_logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to minimize, the target the accuracy is counted against: labels, or the teacher's argmax)."""
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        loss = kd_loss(student_logits, teacher_logits.to(student_logits.dtype), self.cfg.temperature)
        if self.cfg.labels:
            loss = self.cfg.weight * loss + (1 - self.cfg.weight) * F.cross_entropy(student_logits, y)
        if self.cfg.feature_weight > 0:
            loss = loss + self.cfg.feature_weight * F.mse_loss(self._features["student"], self._features["teacher"])
        return loss, y if self.cfg.labels else teacher_logits.argmax(1)
