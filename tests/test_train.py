"""Regularizers and the trainer: AULM semantics, exact resume, divergence, data determinism."""

from __future__ import annotations

import pytest
import torch
from conftest import group_of

from edgeprune.graph import build_graph
from edgeprune.graph.groups import CONV_OUT
from edgeprune.models import create_model
from edgeprune.prune.oracle import liven
from edgeprune.regularize import create_regularizer, list_regularizers
from edgeprune.train.data import ArrayLoader, load_dataset
from edgeprune.train.trainer import CHECKPOINT, TrainConfig, Trainer, TrainingDiverged, lr_factor


def _setup(reg: str = "ssr_l21", **reg_kwargs):
    torch.manual_seed(0)
    model = create_model("cifar_resnet20")
    graph = build_graph(model, torch.randn(1, 3, 32, 32))
    train, test = load_dataset("synthetic")
    regularizer = create_regularizer(reg, model, graph, **reg_kwargs)
    return model, graph, regularizer, ArrayLoader(train, 32, True, seed=3), ArrayLoader(test, 64, False)


CFG = TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0.5)


def test_every_regularizer_penalizes_and_scores_every_prunable_group():
    model, graph, *_ = _setup()
    liven(model)  # random BN affines, so gammas and betas differ per channel
    assert set(list_regularizers()) >= {"none", "oicsr", "group_lasso", "slimming", "ssr_l21", "ssr_l20"}
    regs = {name: create_regularizer(name, model, graph, lam=0.5) for name in list_regularizers()}
    imp = {name: reg.importance() for name, reg in regs.items()}
    for name in regs:
        assert set(imp[name]) == {g.id for g in graph.prunable_groups}, name
        assert all(len(imp[name][g.id]) == g.size for g in graph.prunable_groups), name
    # By hand, for channel 3 of layer1.0's inner group: conv1's filter, bn1's gamma and beta, conv2's input slice.
    block, c = model.layer1[0], 3
    group, u = group_of(graph, "layer1.0.conv1", CONV_OUT, c)
    with torch.no_grad():
        out = block.conv1.weight[c].pow(2).sum() + block.bn1.weight[c] ** 2 + block.bn1.bias[c] ** 2
        both = out + block.conv2.weight[:, c].pow(2).sum()
        expected = {"none": both, "oicsr": both, "group_lasso": out, "slimming": block.bn1.weight[c].abs(),
                    "ssr_l21": block.conv1.weight[c].norm(), "ssr_l20": block.conv1.weight[c].norm()}  # fmt: skip
    for name, value in expected.items():
        assert imp[name][group.id][u].item() == pytest.approx(value.item(), rel=1e-5), name
    # Penalties: none and SSR before its first step (F = W, Y = 0) are zero; OICSR is lam * sum of group norms,
    # slimming lam * sum of |gamma|.
    assert regs["none"].penalty() == 0 and regs["ssr_l21"].penalty() == 0 and regs["ssr_l20"].penalty() == 0
    norms = sum(e.sqrt().sum() for e in imp["none"].values())
    assert regs["oicsr"].penalty().item() == pytest.approx(0.5 * norms.item(), rel=1e-5)
    gammas = sum(e.sum() for e in imp["slimming"].values())
    assert regs["slimming"].penalty().item() == pytest.approx(0.5 * gammas.item(), rel=1e-5)
    assert regs["group_lasso"].penalty() > 0


def test_oicsr_gradient_shrinks_out_and_in_slices_together():
    """One norm per channel over its out- and in-slices: d(lam * ||group||)/dW = lam * W / ||group|| on both sides
    (streams left out, so conv2's columns carry no second, out-row group)."""
    model, graph, reg, *_ = _setup("oicsr", lam=2.0, streams=False)
    reg.penalty().backward()
    block, c = model.layer1[0], 3
    with torch.no_grad():
        norm = (block.conv1.weight[c].pow(2).sum() + block.bn1.weight[c] ** 2 + block.bn1.bias[c] ** 2
                + block.conv2.weight[:, c].pow(2).sum()).sqrt()  # fmt: skip
    assert torch.allclose(block.conv1.weight.grad[c], 2.0 * block.conv1.weight[c] / norm, rtol=1e-5)
    assert torch.allclose(block.conv2.weight.grad[:, c], 2.0 * block.conv2.weight[:, c] / norm, rtol=1e-5)
    assert torch.allclose(block.bn1.weight.grad[c], 2.0 * block.bn1.weight[c] / norm, rtol=1e-5)


@pytest.mark.parametrize("name", ["oicsr", "group_lasso", "slimming", "ssr_l21"])
def test_streams_false_leaves_residual_streams_alone(name):
    model, graph, *_ = _setup()
    streams = {g.id for g in graph.prunable_groups if g.shared}
    reg = create_regularizer(name, model, graph, lam=1.0, streams=False)
    assert set(reg.importance()) == {g.id for g in graph.prunable_groups} - streams
    if name in ("oicsr", "slimming"):  # the two that penalize BN: bn2 belongs to the stream, bn1 to the block
        model.zero_grad()
        reg.penalty().backward()
        for block in (*model.layer1, *model.layer2, *model.layer3):
            assert block.bn2.weight.grad is None or not block.bn2.weight.grad.any()
            assert block.bn1.weight.grad is not None and block.bn1.weight.grad.any()


ANALYTIC = [("oicsr", {}), ("oicsr", {"size_weighted": True}), ("group_lasso", {}), ("ssr_l21", {"groups": "out-in"}),
            ("ssr_l20", {})]  # fmt: skip


@pytest.mark.parametrize("name,kwargs", ANALYTIC)
def test_analytic_penalty_gradient_matches_autograd(name, kwargs):
    model, graph, reg, *_ = _setup(name, lam=0.3, **kwargs)
    with torch.no_grad():  # a dead channel: the norm's gradient must stay finite there (EPS)
        model.layer1[0].conv1.weight[0].zero_()
    if name.startswith("ssr"):  # move W away from F, and give Y a value, so the W-step term is not zero
        reg.after_step(reg.every - 1)
        for p in model.parameters():
            p.data.add_(0.01 * torch.randn_like(p))
    reg.penalty().backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    value = reg.add_gradient()
    assert torch.allclose(value, reg.penalty().detach(), rtol=1e-5)
    got = {n: p.grad for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert set(got) == {n for n, g in expected.items() if g.abs().sum() > 0}
    for n, g in got.items():
        assert torch.allclose(g, expected[n], rtol=1e-4, atol=1e-7), n


def test_aulm_prox_l21_soft_and_l20_hard_threshold():
    for norm in ("ssr_l21", "ssr_l20"):
        model, graph, reg, *_ = _setup(norm, lam=1e6, rho=1.0, every=1)  # huge lam: every group is shrunk to 0
        reg.after_step(0)
        assert reg.zero_units() == sum(len(g.prunable_units) for g in graph.prunable_groups)
        model, graph, reg, *_ = _setup(norm, lam=0.0, rho=1.0, every=1)  # lam 0: F = W, nothing zero
        reg.after_step(0)
        assert reg.zero_units() == 0
    # L2,1 with a middling threshold shrinks norms by exactly lam/rho
    model, graph, reg, *_ = _setup("ssr_l21", lam=0.01, rho=1.0, every=1)
    before = {g: v.clone() for g, v in reg.importance().items()}
    reg.after_step(0)
    after = reg.importance()
    g = next(iter(before))
    expected = (before[g] - 0.01).clamp_min(0)
    assert torch.allclose(after[g], expected, atol=1e-5)


def test_interrupted_then_resumed_run_is_bit_identical(tmp_path):
    model, _, reg, train, test = _setup("ssr_l21", every=3)
    Trainer(model, reg, train, test, CFG, tmp_path / "a", progress=False).fit()
    reference = model.state_dict()

    model, _, reg, train, test = _setup("ssr_l21", every=3)
    t = Trainer(model, reg, train, test, CFG, tmp_path / "b", progress=False)
    real_step = t._step

    def interrupt_after_11(x, y):  # 8 steps per epoch: stop mid-way through epoch 2
        out = real_step(x, y)
        if t.global_step == 11:
            t._stop = True
        return out

    t._step = interrupt_after_11
    assert t.fit()["status"] == "interrupted"
    model, _, reg, train, test = _setup("ssr_l21", every=3)
    torch.manual_seed(123)  # the checkpoint, not the process, must decide the rest
    t2 = Trainer(model, reg, train, test, CFG, tmp_path / "b", progress=False)
    assert t2.resume() and (t2.epoch, t2.step_in_epoch, t2.hook.step) == (1, 3, 11)  # the hook's AULM clock too
    assert t2.fit()["status"] == "done"
    for k, v in model.state_dict().items():
        assert torch.equal(v, reference[k]), k
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "test_acc" in lines[-1]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model, _, reg, train, test = _setup("oicsr")
    t = Trainer(model, reg, train, test, CFG, tmp_path, progress=False)
    real = reg.add_gradient  # OICSR adds its gradient itself, after backward: a NaN penalty there must stop too
    reg.add_gradient = lambda: real() * (float("nan") if t.epoch == 1 else 1.0)
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        t.fit()
    ckpt = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_lr_schedule_and_augmentation_are_deterministic():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(99, 100, 0, "step") == pytest.approx(0.01)
    train, _ = load_dataset("synthetic")
    a, b = ArrayLoader(train, 16, True, seed=1), ArrayLoader(train, 16, True, seed=1)
    xa, ya = next(a.epoch(2))
    xb, yb = next(b.epoch(2))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    xc, _ = next(a.epoch(3))
    assert not torch.equal(xa, xc)
