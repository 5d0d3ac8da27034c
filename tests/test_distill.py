"""Distillation from the unpruned model: the loss, label-free targets, and a run that learns from a teacher."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.errors import InputError
from edgeprune.train.distill import DistillConfig, Distiller, kd_loss


def test_kd_loss_is_the_scaled_kl_of_the_softened_distributions():
    s, t = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.5, 1.5, 0.0]])
    p, q = F.softmax(t / 2, dim=1)[0], F.softmax(s / 2, dim=1)[0]
    by_hand = 4 * sum(float(pi * math.log(pi / qi)) for pi, qi in zip(p, q))
    assert kd_loss(s, t, 2.0).item() == pytest.approx(by_hand, rel=1e-5)
    assert kd_loss(t, t, 3.0).item() == pytest.approx(0.0, abs=1e-6)


class Linear2(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.body, self.head = nn.Linear(3, width), nn.Linear(width, 5)

    def forward(self, x):
        return self.head(self.body(x).relu())


def test_label_free_targets_the_teacher_and_labels_mix_in_cross_entropy():
    torch.manual_seed(0)
    teacher, student = Linear2(), Linear2()
    x, y = torch.randn(8, 3), torch.randint(0, 5, (8,))
    out = student(x)
    free, target = Distiller(teacher, DistillConfig("t", labels=False), student).loss(out, x, y)
    assert torch.equal(target, teacher(x).argmax(1))
    assert free.item() == pytest.approx(kd_loss(out, teacher(x), 4.0).item(), rel=1e-6)
    ce_only, target = Distiller(teacher, DistillConfig("t", weight=0.0), student).loss(out, x, y)
    assert torch.equal(target, y) and ce_only.item() == pytest.approx(F.cross_entropy(out, y).item(), rel=1e-6)
    assert all(not p.requires_grad for p in teacher.parameters())  # the teacher stays as it is


def test_feature_matching_needs_the_same_penultimate_width():
    Distiller(Linear2(), DistillConfig("t", feature_weight=1.0), Linear2())
    with pytest.raises(InputError, match="penultimate width"):
        Distiller(Linear2(8), DistillConfig("t", feature_weight=1.0), Linear2(4))
    with pytest.raises(InputError, match="temperature"):
        DistillConfig("t", temperature=0.0)


def test_label_free_run_learns_the_teachers_answers(tmp_path):
    """A random-init ResNet-20 distilled from the pretrained one on synthetic images (labels ignored): its
    agreement with the teacher, which the run logs as train_acc, goes up."""
    out = tmp_path / "run"
    args = ["train", "cifar_resnet20", "--data", "synthetic", "--reg", "none", "--distill", "cifar_resnet20",
            "--no-labels", "--epochs", "4", "--batch-size", "32", "--lr", "0.05", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert metrics[-1]["train_acc"] > metrics[0]["train_acc"]
    run = json.loads((out / "run.json").read_text())
    assert run["distill"]["teacher"] == "cifar_resnet20" and run["distill"]["labels"] is False
