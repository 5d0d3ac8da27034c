"""SparsityHook in a training loop written the way a user writes one, and the Lightning callback around it:
the regularization reaches the weights, the state round-trips, and the saved result plans and shrinks."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from edgeprune import Budget, PruneSettings, SparsityHook, prune_run
from edgeprune.graph import build_graph
from edgeprune.models import create_model
from edgeprune.regularize import HookOrderError

EXAMPLE = torch.randn(1, 3, 32, 32)


def batches(n: int, size: int = 16, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 32, 32, generator=g), torch.randint(0, 10, (size,), generator=g)) for _ in range(n)]


def user_loop(model, hook: SparsityHook | None, data, lr: float = 0.05, momentum: float = 0.9) -> None:
    """A plain PyTorch loop; the hook's two calls are the only edgeprune lines in it."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    model.train()
    for x, y in data:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        if hook:
            hook.after_backward()
        optimizer.step()
        if hook:
            hook.after_step()


def channel_norms(model) -> dict[int, torch.Tensor]:
    """Out-in norm of every channel of every prunable group (the "none" method's importance, square-rooted)."""
    return {g: e.sqrt() for g, e in SparsityHook(model, EXAMPLE, "none").importance().items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """ResNet-20 trained a few steps with OICSR through the hook, beside the same loop without it."""
    torch.manual_seed(0)
    plain = create_model("cifar_resnet20")
    model = copy.deepcopy(plain)
    hook = SparsityHook(model, EXAMPLE, "oicsr", 0.05)
    data = batches(8)
    user_loop(model, hook, data)
    user_loop(plain, None, data)
    folder = tmp_path_factory.mktemp("hook") / "run"
    hook.save(folder, "cifar_resnet20")
    return model, plain, hook, folder


def test_the_hook_shrinks_channel_groups_against_the_same_loop_without_it(trained):
    model, plain, hook, _ = trained
    with_hook, without = channel_norms(model), channel_norms(plain)
    assert set(with_hook) == set(without) == {g.id for g in hook.graph.prunable_groups}
    total = lambda norms: float(sum(v.sum() for v in norms.values()))  # noqa: E731
    assert total(with_hook) < 0.98 * total(without)
    shrunk = torch.cat([with_hook[g] < without[g] for g in with_hook])
    assert shrunk.float().mean() > 0.95  # nearly every channel, not a few
    assert hook.step == 8 and float(hook.penalty()) > 0


def test_importance_has_one_score_per_channel_of_every_prunable_group(trained):
    model, _, hook, _ = trained
    imp = hook.importance()
    assert {g: len(v) for g, v in imp.items()} == {g.id: g.size for g in hook.graph.prunable_groups}
    # OICSR's importance is each channel's out-in energy
    norms = channel_norms(model)
    for g, v in imp.items():
        assert torch.allclose(v.sqrt(), norms[g], rtol=1e-5)


@pytest.mark.parametrize("method", ["oicsr", "group_lasso"])
def test_the_regularizer_works_on_weights_away_from_its_cpu_indices(method):
    """Slices index with CPU tensors; a trainer may move the model to a GPU after the hook was built
    (Ultralytics' does). The meta device stands in for the GPU: it checks that tensors share a device as CUDA
    does. (``module.to("meta")`` makes new parameters, so the hook is built on the moved model's graph.)"""
    model = create_model("cifar_resnet20")
    graph = build_graph(model, EXAMPLE)
    model.to("meta")
    hook = SparsityHook.from_graph(model, graph, method, lam=0.05)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    hook.regularizer.add_gradient()  # gathers and scatters on the weights
    assert {s.unit_energy().device.type for s in hook.regularizer.slices} == {"meta"}
    # the indices the CPU-side code uses stay where they were
    assert {b.unit.device.type for s in hook.regularizer.slices for b in s.blocks} == {"cpu"}


def test_slimming_goes_through_autograd_and_adds_exactly_its_penalty_gradient():
    """A method without an analytic gradient: the hook adds d(penalty)/dW to what backward left."""
    torch.manual_seed(0)
    model = create_model("cifar_resnet20")
    hook = SparsityHook(model, EXAMPLE, "slimming", 0.5)
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    task = {n: p.grad.clone() for n, p in model.named_parameters()}
    value = hook.after_backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    hook.regularizer.penalty().backward()
    penalty = {n: torch.zeros_like(p) if p.grad is None else p.grad for n, p in model.named_parameters()}
    for n in got:
        assert torch.allclose(got[n], task[n] + penalty[n], atol=1e-7), n
    assert sum(bool(g.any()) for g in penalty.values()) == 19  # ResNet-20's 19 BN gammas (all in prunable groups)
    assert value == pytest.approx(float(hook.penalty()))


def test_saved_run_plans_and_shrinks_with_the_hooks_importance(trained, tmp_path):
    model, _, hook, folder = trained
    settings = PruneSettings(Budget.parse("macs", "0.6x"), ranked_by="macs")
    result = prune_run(str(folder), "cpu-ort", settings, tmp_path / "pruned")
    summary = json.loads((tmp_path / "pruned" / "plan_result.json").read_text())
    assert summary["importance"] == f"oicsr importance from {folder / 'importance.json'}"
    assert summary["oracle_error"] < 1e-4
    assert result.pruned["macs"] <= 0.6 * result.dense["macs"]
    # within a group the planner drops the channels the hook scored lowest
    imp = hook.importance()
    for gid, removed in result.plan.removed(hook.graph).items():
        if removed:
            kept = result.plan.keep[gid]
            assert imp[gid][removed].max() <= imp[gid][kept].min(), gid
    assert any(result.plan.removed(hook.graph).values())


def test_state_round_trips_and_the_resumed_loop_matches_the_uninterrupted_one(tmp_path):
    torch.manual_seed(0)
    reference = create_model("cifar_resnet20")
    model = copy.deepcopy(reference)
    data = batches(6, size=8)
    hook = SparsityHook(reference, EXAMPLE, "ssr_l21", 1e-2, rho=1e-2, every=2)
    user_loop(reference, hook, data, momentum=0.0)

    first = SparsityHook(model, EXAMPLE, "ssr_l21", 1e-2, rho=1e-2, every=2)
    user_loop(model, first, data[:3], momentum=0.0)  # stops after step 3, between two AULM updates
    torch.save({"model": model.state_dict(), "hook": first.state_dict()}, tmp_path / "ckpt.pt")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    resumed_model = create_model("cifar_resnet20")
    resumed_model.load_state_dict(ckpt["model"])
    resumed = SparsityHook(resumed_model, EXAMPLE, "ssr_l21", 1e-2, rho=1e-2, every=2)
    resumed.load_state_dict(ckpt["hook"])
    assert resumed.step == 3
    for a, b in zip(resumed.regularizer.F, first.regularizer.F):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    user_loop(resumed_model, resumed, data[3:], momentum=0.0)
    for (name, a), b in zip(resumed_model.state_dict().items(), reference.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    for g, v in hook.importance().items():
        assert torch.allclose(resumed.importance()[g], v, atol=1e-6)


def test_ssr_needs_after_step_and_says_so():
    torch.manual_seed(0)
    model = create_model("cifar_resnet20")
    x, y = batches(1, size=4)[0]
    ssr = SparsityHook(model, EXAMPLE, "ssr_l21", 1e-4)
    F.cross_entropy(model(x), y).backward()
    ssr.after_backward()
    with pytest.raises(HookOrderError, match=r"after_step\(\) after every optimizer.step\(\)"):
        ssr.after_backward()  # the loop forgot after_step: AULM's updates would never run
    ssr.after_step()
    with pytest.raises(HookOrderError, match=r"after_step\(\) without after_backward\(\)"):
        ssr.after_step()
    oicsr = SparsityHook(model, EXAMPLE, "oicsr", 1e-4)  # nothing to do after the step: optional there
    oicsr.after_backward()
    oicsr.after_backward()
    assert not oicsr.needs_step and ssr.needs_step


def lightning_fit(net, callbacks: list, data, accumulate: int) -> None:
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    class Classifier(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    x, y = torch.cat([b[0] for b in data]), torch.cat([b[1] for b in data])
    loader = DataLoader(TensorDataset(x, y), batch_size=len(data[0][1]), shuffle=False)
    trainer = L.Trainer(max_steps=len(data) // accumulate, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accumulate_grad_batches=accumulate, callbacks=callbacks)  # fmt: skip
    trainer.fit(Classifier(), loader)


def test_lightning_callback_does_what_the_hook_does_in_a_plain_loop(tmp_path):
    """Same net, data and SSR settings: Lightning with the callback (accumulating 2 batches per step) ends
    where a plain loop with the hook ends; without the callback it does not. The result plans and shrinks."""
    from edgeprune.integrations.lightning import SparsityCallback

    torch.manual_seed(0)
    net = create_model("tiny_nets:plain_cnn")
    plain_net, bare_net = copy.deepcopy(net), copy.deepcopy(net)
    data = batches(8, size=8)
    settings = {"rho": 1.0, "every": 2}
    hook = SparsityHook(net, EXAMPLE, "ssr_l21", 1.0, **settings)
    lightning_fit(net, [SparsityCallback(hook)], data, accumulate=2)
    lightning_fit(bare_net, [], data, accumulate=2)

    plain_hook = SparsityHook(plain_net, EXAMPLE, "ssr_l21", 1.0, **settings)
    optimizer = torch.optim.SGD(plain_net.parameters(), lr=0.05)
    for i, (x, y) in enumerate(data):  # the same loop by hand, accumulating two batches
        (F.cross_entropy(plain_net(x), y) / 2).backward()
        if i % 2:
            plain_hook.after_backward()
            optimizer.step()
            optimizer.zero_grad()
            plain_hook.after_step()

    assert hook.step == plain_hook.step == 4
    for (name, a), b in zip(net.state_dict().items(), plain_net.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert any(not torch.allclose(a, c, atol=1e-4) for a, c in zip(net.parameters(), bare_net.parameters()))
    imp = hook.importance()
    assert {g: len(v) for g, v in imp.items()} == {g.id: g.size for g in hook.graph.prunable_groups}
    zero = sum(int((v == 0).sum()) for v in imp.values())
    assert zero > 0  # AULM's proximal step zeroed some channels: the ones to prune first

    hook.save(tmp_path / "run", "tiny_nets:plain_cnn")
    settings = PruneSettings(Budget.parse("macs", "0.5x"), ranked_by="macs", align=1)  # any width: groups are small
    result = prune_run(str(tmp_path / "run"), "cpu-ort", settings, tmp_path / "pruned")
    summary = json.loads((tmp_path / "pruned" / "plan_result.json").read_text())
    assert summary["importance"].startswith("ssr_l21 importance from") and summary["oracle_error"] < 1e-4
    removed = result.plan.removed(hook.graph)
    for g, v in imp.items():  # every channel AULM zeroed is gone
        assert set(removed[g]) >= set(torch.nonzero(v == 0).flatten().tolist()), g


def test_without_lightning_the_callback_names_the_extra(monkeypatch):
    import edgeprune.integrations.lightning as integration
    from edgeprune.integrations import MissingExtraError

    integration._callback_class.cache_clear()
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)  # what an environment without it raises
    try:
        with pytest.raises(MissingExtraError, match=r"pip install 'edgeprune\[lightning\]'"):
            integration.SparsityCallback  # noqa: B018
    finally:
        integration._callback_class.cache_clear()


def test_the_howto_example_runs_and_prunes_with_the_learned_importance(tmp_path, monkeypatch):
    doc = (Path(__file__).resolve().parents[1] / "docs" / "howto" / "your-training-loop.md").read_text()
    block = re.search(r"<!-- hook-example -->\n```python\n(.*?)```", doc, re.S)
    assert block, "docs/howto/your-training-loop.md lacks its example"
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "your-training-loop example", "exec"), {})  # noqa: S102
    summary = json.loads((tmp_path / "runs" / "mine-pruned" / "plan_result.json").read_text())
    assert summary["importance"] == "oicsr importance from runs/mine/importance.json"
    assert summary["ratio"]["latency"] <= 0.8 and summary["oracle_error"] < 1e-4
