"""Distillation for detectors: a pruned YOLO learns its unpruned teacher's raw head outputs.

Two terms, both on the one-to-many head branch, anchor by anchor (teacher and student share the anchors,
since pruning keeps the strides and the input size):

- classes: the binary KL divergence between the teacher's and the student's per-class sigmoid probabilities
  (YOLO scores classes independently, so no softmax and no temperature here);
- boxes: the KL divergence between their box-side distributions (DFL's ``reg_max`` bins, softmax at
  temperature T, scaled by T²: localization distillation, Zheng et al., CVPR 2022), weighted by the
  teacher's confidence that the anchor holds an object.

Both are normalized by the batch's summed teacher confidence, as Ultralytics normalizes its class loss by
the summed target scores. The term wraps Ultralytics' own criterion (the model's ``criterion``), so the
trainer runs unchanged: with labels the loss is ``(1 - w) · detection + w · distillation``, label-free
(``DistillConfig.labels`` false) the distillation term alone.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeprune.train.distill import DistillConfig


def detection_kd(student_box: torch.Tensor, student_cls: torch.Tensor, teacher_box: torch.Tensor,
                 teacher_cls: torch.Tensor, temperature: float) -> torch.Tensor:  # fmt: skip
    """The distillation term (see the module) of one batch: boxes (b, 4·reg_max, anchors), classes (b, nc,
    anchors), teacher and student alike. Zero when the student answers as the teacher."""
    b, _, anchors = student_cls.shape
    p = teacher_cls.sigmoid()
    # binary KL = cross-entropy against the teacher's probabilities minus their entropy
    bkl = F.binary_cross_entropy_with_logits(student_cls, p, reduction="none") - F.binary_cross_entropy_with_logits(
        teacher_cls, p, reduction="none"
    )
    weight = p.amax(1)  # (b, anchors)
    norm = weight.sum().clamp(min=1)
    t = temperature
    log_s = F.log_softmax(student_box.view(b, 4, -1, anchors) / t, 2)
    log_t = F.log_softmax(teacher_box.view(b, 4, -1, anchors) / t, 2)
    box_kl = (log_t.exp() * (log_t - log_s)).sum(2).mean(1) * t * t  # (b, anchors)
    return (bkl.sum() + (box_kl * weight).sum()) / norm


class DetectionDistillLoss:
    """Ultralytics' detection criterion plus :func:`detection_kd` against ``teacher`` (a ``YoloRaw``, whose
    output starts with the one-to-many branch's box distributions and class logits)."""

    def __init__(self, base, teacher: nn.Module, cfg: DistillConfig, reg_max: int, nc: int) -> None:
        self.base, self.teacher, self.cfg = base, teacher.eval(), cfg
        self.reg_max, self.nc = reg_max, nc
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def __call__(self, preds, batch: dict) -> tuple[torch.Tensor, dict]:
        loss, items = self.base(preds, batch)
        raw = preds[1] if isinstance(preds, tuple) else preds
        raw = raw.get("one2many", raw)  # an end-to-end head: its one-to-many branch
        with torch.no_grad():
            t = self.teacher(batch["img"]).to(raw["scores"].dtype)
        boxes = 4 * self.reg_max
        kd = detection_kd(raw["boxes"], raw["scores"], t[:, :boxes], t[:, boxes : boxes + self.nc],
                          self.cfg.temperature)  # fmt: skip
        w = self.cfg.weight if self.cfg.labels else 1.0
        # Ultralytics sums the returned vector, its terms scaled by the batch size (its logged items are not)
        total = torch.cat([(1 - w) * loss, (w * kd * raw["scores"].shape[0]).view(1)])
        return total, {**items, "kd_loss": kd.detach()}
