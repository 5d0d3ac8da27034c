"""Calibrated pruning: output-change importance on real inputs, and removed channels' means folded into the next
layers (shrink), checked against toy models whose answer is known and against the masked-equivalence oracle."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from conftest import group_of, model_and_graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_oracle import draw_plan

from edgeprune.errors import InputError
from edgeprune.graph import build_graph
from edgeprune.graph.groups import CONV_OUT
from edgeprune.prune import Plan, PlanError, measure_channels, relative_error, shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE, check_shrunk, oracle_error
from edgeprune.prune.serialize import arch_spec, load_pruned, save_pruned

SCALES = (0.0, 0.1, 3.0, 1.0)  # how much the consumer reads channels 0..3 of the first conv


class Toy(nn.Module):
    """conv(3->5) + ReLU, then a 1x1 conv without bias + BN: channels 0..3 carry the same signal, read by the
    consumer at SCALES along one direction; channel 4 is constant (zero weights, bias 1)."""

    def __init__(self, consumer_kernel: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 5, 3, padding=1)
        self.conv2 = nn.Conv2d(5, 6, consumer_kernel, bias=False)
        self.bn = nn.BatchNorm2d(6)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.conv1.weight[:4] = torch.randn(1, 3, 3, 3, generator=gen)
            self.conv1.bias[:4] = 0.1
            self.conv1.weight[4], self.conv1.bias[4] = 0.0, 1.0
            direction = torch.randn(6, 1, consumer_kernel, consumer_kernel, generator=gen)
            for c, s in enumerate(SCALES):
                self.conv2.weight[:, c : c + 1] = s * direction
            self.conv2.weight[:, 4:5] = 5 * direction  # the constant channel: large weights, no information
            self.bn.running_mean.normal_(generator=gen)
            self.bn.weight.data.uniform_(0.5, 1.5, generator=gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv2(torch.relu(self.conv1(x))))


def _toy(kernel: int = 1):
    model = Toy(kernel).eval()
    return model, build_graph(model, torch.randn(1, 3, 12, 12), model_name="toy")


def _images(n: int = 16, side: int = 12) -> torch.Tensor:
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(3))


def test_output_change_ranks_channels_by_what_the_output_loses():
    model, graph = _toy()
    stats = measure_channels(model, graph, _images())
    group, _ = group_of(graph, "conv1", CONV_OUT)
    scores = stats.scores[group.id]
    assert scores[4] == 0  # constant: with its mean folded into the next layer nothing is lost
    assert scores[0] == 0  # read with weight 0
    assert scores[1] > 0
    assert sorted(range(4), key=lambda c: float(scores[c])) == [0, 1, 3, 2]  # the order of SCALES
    assert torch.allclose(scores[1] / scores[3], torch.tensor(0.01, dtype=torch.float64), rtol=1e-6)
    assert stats.means["conv2"][4] == pytest.approx(1.0)


@pytest.mark.parametrize("kernel", [1, 3])  # a 3x3 consumer without padding: every window sees the channel
def test_a_removed_constant_channel_leaves_the_output_unchanged(kernel, tmp_path):
    model, graph = _toy(kernel)
    x = _images(4)
    plan = Plan("toy", graph.fingerprint, {group_of(graph, "conv1", CONV_OUT)[0].id: [0, 1, 2, 3]})
    means = measure_channels(model, graph, _images()).means
    pruned, changes = shrink(model, graph, plan, means)
    with torch.no_grad():
        expected = model(x)
        assert relative_error(pruned.eval()(x), expected) < 1e-6
        assert relative_error(shrink(model, graph, plan)[0].eval()(x), expected) > 0.1  # zeroed: it is lost
    assert changes["conv2"]["bias"] is True and model.conv2.bias is None  # the original is untouched
    assert check_shrunk(model, graph, plan, pruned, (3, 12, 12), means) <= ORACLE_TOLERANCE
    save_pruned(pruned, arch_spec("toy", {}, graph.fingerprint, changes), tmp_path)
    # the spec records the new bias: a toy is not in the registry, so rebuild the layer as apply_arch would
    assert (tmp_path / "arch.json").read_text().count('"bias": true') == 1


def test_shrink_refuses_means_that_miss_a_consumer():
    model, graph = _toy()
    plan = Plan("toy", graph.fingerprint, {group_of(graph, "conv1", CONV_OUT)[0].id: [0, 1, 2]})
    with pytest.raises(PlanError, match="no calibration mean for conv2"):
        shrink(model, graph, plan, {})


def test_calibration_refuses_an_empty_batch():
    model, graph = _toy()
    with pytest.raises(InputError, match="batch of images"):
        measure_channels(model, graph, torch.zeros(0, 3, 12, 12))


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def _compensated_oracle(name, data):
    model, graph, size = model_and_graph(name)
    plan = draw_plan(data, graph)
    means = measure_channels(model, graph, torch.randn(2, 3, size, size)).means
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    pruned, _ = shrink(model, graph, plan, means)
    err = oracle_error(model, graph, plan, pruned, x, means)
    assert err <= ORACLE_TOLERANCE, f"{name}: compensated shrink deviates from the masked original: {err:.2e}"


def test_compensated_shrink_matches_the_masked_original(fast_model):
    _compensated_oracle(fast_model[0])


def test_a_compensated_model_reloads(tmp_path):
    model, graph, size = model_and_graph("cifar_resnet56")
    gid = next(g.id for g in graph.prunable_groups if not g.shared)
    plan = Plan("cifar_resnet56", graph.fingerprint, {gid: list(range(0, graph.groups[gid].size, 2))})
    means = measure_channels(model, graph, torch.randn(4, 3, size, size)).means
    pruned, changes = shrink(model, graph, plan, means)
    save_pruned(pruned, arch_spec("cifar_resnet56", {}, graph.fingerprint, changes), tmp_path)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert relative_error(load_pruned(tmp_path).eval()(x), pruned.eval()(x)) < 1e-6


def _image_folder(root, classes=("a", "b"), per_class=6, side=32):
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                pixels = (torch.rand(side, side, 3, generator=gen) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


def test_prune_command_calibrates_on_images(tmp_path):
    import json

    from click.testing import CliRunner

    from edgeprune.cli import main

    data = _image_folder(tmp_path / "data")
    args = ["prune", "cifar_resnet20", "--ratio", "0.3", "--calibration-data", str(data), "--calibration-count", "8"]
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "cal"), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["oracle_error"] <= ORACLE_TOLERANCE
    assert summary["refit"] and all(f["after"] <= f["before"] for f in summary["refit"])  # the next layers refitted
    spec = json.loads((tmp_path / "cal" / "model" / "arch.json").read_text())
    assert any(c.get("bias") is True for c in spec["changes"].values())  # means folded into bias-free convs
    plain = CliRunner().invoke(main, ["prune", "cifar_resnet20", "--ratio", "0.3", "--out", str(tmp_path / "p")])
    assert plain.exit_code == 0, plain.output
    plans = [json.loads((tmp_path / d / "plan.json").read_text())["groups"] for d in ("p", "cal")]
    assert plans[0] != plans[1]  # the same ratio, other channels
    bad = CliRunner().invoke(main, ["prune", "cifar_resnet20", "--ratio", "0.3", "--calibration-count", "8", "--out",
                                    str(tmp_path / "x")])  # fmt: skip
    assert bad.exit_code == 2 and "--calibration-count cannot be used without --calibration-data" in bad.output
    few = CliRunner().invoke(main, [*args[:-1], "999", "--out", str(tmp_path / "y")])
    assert few.exit_code != 0 and "999" in few.output


def test_compensated_yolo_matches_the_masked_original():
    """C2f's split and concat map a removed channel's mean to the right consumer input."""
    pytest.importorskip("ultralytics")
    import random

    from test_ultralytics import batch, lively, random_plan

    model, graph = lively("yolov8n.yaml")
    plan = random_plan(graph, random.Random(5), low=0.3)
    stats = measure_channels(model, graph, batch(4))
    pruned, _ = shrink(model, graph, plan, stats.means)
    assert oracle_error(model, graph, plan, pruned, batch(), stats.means) <= ORACLE_TOLERANCE
    assert oracle_error(model, graph, plan, pruned, batch()) > 10 * ORACLE_TOLERANCE  # the means did change it


def test_a_model_weighs_its_outputs():
    class Weighed(Toy):
        def output_weights(self, x, y):
            return torch.full((1, y.shape[1], 1, 1), 2.0)

    model, graph = _toy()
    weighed = Weighed().eval()
    weighed.load_state_dict(model.state_dict())
    plain = measure_channels(model, graph, _images()).scores
    scaled = measure_channels(weighed, graph, _images()).scores
    assert all(torch.allclose(scaled[g], 4 * plain[g]) for g in plain)  # the projection sees 2 y


def test_yolo_weighs_every_scale_the_same():
    pytest.importorskip("ultralytics")
    from test_ultralytics import SIZE, batch, lively

    model, _ = lively("yolov8n.yaml")
    x = batch(1)
    with torch.no_grad():
        y = model(x)
    w = model.output_weights(x, y)
    counts = [(SIZE // s) ** 2 for s in (8, 16, 32)]
    assert w.shape == (sum(counts),) and y.shape[-1] == sum(counts)
    totals = [float(part.pow(2).sum()) for part in w.split(counts)]
    assert totals == pytest.approx([sum(counts) / 3] * 3)
    assert float(w[-1]) == pytest.approx(4 * float(w[0]))  # P5 has 1/16 of P3's anchors
