"""int8_layers = "measured": which layers an onnxruntime int8 model leaves in fp32, chosen by timing trials."""

from __future__ import annotations

import onnx
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from edgeprune.backends import int8_layers as il
from edgeprune.backends import prepare_runner
from edgeprune.backends.int8_layers import EVERYTHING, Int8Layers, layer_groups, search_fp32_groups
from edgeprune.cli import main
from edgeprune.export import export_onnx
from edgeprune.report import markdown
from edgeprune.targets import TargetError, target_from_dict
from edgeprune.timing import Ratio
from edgeprune.validation import resolve_model, validate

FAST = {"backend": "onnxruntime", "precision": "int8", "threads": 1, "warmup": 1, "repeats": 2, "rounds": 3}


class Mobile(nn.Module):
    """Stem 3x3, a depthwise 3x3 + pointwise 1x1 pair with hard-swish, twice, and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1), nn.ReLU()]
        for _ in range(2):
            layers += [nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Hardswish(), nn.Conv2d(16, 16, 1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


@pytest.fixture(scope="module")
def mobile_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("il") / "model.onnx"
    export_onnx(Mobile().eval(), torch.randn(1, 3, 32, 32), path)
    return path


def test_layer_groups_name_parts_kinds_and_everything(mobile_onnx):
    groups = layer_groups(mobile_onnx)
    convs = [n.name for n in onnx.load(str(mobile_onnx)).graph.node if n.op_type == "Conv"]
    assert len(groups["Conv 3x3 dense"]) == 1 and len(groups["Conv 3x3 depthwise"]) == 2
    assert len(groups["Conv 1x1 dense"]) == 2
    assert set(convs) <= set(groups[EVERYTHING])
    parts = [g for g in groups if g.startswith("part ")]
    assert parts == [f"part {i} of 4" for i in range(1, 5)]
    # the parts cut the graph's order into contiguous runs that hold every node once
    assert [n for p in parts for n in groups[p]] == groups[EVERYTHING]


def _compare_by_cost(groups: dict[str, list[str]], saves: dict[str, float], everything: float):
    """A fake timer: leaving a node in fp32 saves ``saves[node]`` of the time (negative: costs); the fp32 model
    takes ``everything`` of the fully quantized one's time. The interval is the ratio +- 0.02."""

    def cost(fp32: list[str]) -> float:
        if EVERYTHING in fp32:
            return everything
        return 1 - sum(saves.get(n, 0.0) for n in Int8Layers(groups, fp32).fp32_nodes)

    def compare(now: list[str], trial: list[str]) -> Ratio:
        r = cost(trial) / cost(now)
        return Ratio(r, r - 0.02, r + 0.02, 3)

    return compare


def test_the_search_keeps_a_group_only_when_its_whole_interval_is_faster():
    groups = {"part 1 of 2": ["a", "b"], "part 2 of 2": ["c", "d"], "Conv 3x3 depthwise": ["b", "d"],
              "Mul": ["e"], EVERYTHING: ["a", "b", "c", "d", "e"]}  # fmt: skip
    # part 1 saves 20 %; d alone saves 3 %, but c costs 4 %; e saves 1 %: inside the interval, not kept
    result = search_fp32_groups(groups, _compare_by_cost(groups, {"a": 0.1, "b": 0.1, "c": -0.04, "d": 0.03,
                                                                  "e": 0.01}, everything=0.9))  # fmt: skip
    assert result.fp32_groups == ["part 1 of 2", "Conv 3x3 depthwise"]
    assert result.fp32_nodes == ["a", "b", "d"]  # once each, in graph order
    tried = [t["fp32"] for t in result.trials]
    assert tried[0] == ["part 1 of 2"] and tried[-1] == [EVERYTHING]
    assert [t["kept"] for t in result.trials] == [True, False, True, False, False]
    assert all(t["kept"] == (t["ratio"]["high"] < 1) for t in result.trials)


def test_the_search_ends_with_the_fp32_model_when_that_is_fastest():
    groups = {"part 1 of 2": ["a"], "part 2 of 2": ["b"], "Conv 1x1 dense": ["a", "b"], EVERYTHING: ["a", "b", "c"]}
    result = search_fp32_groups(groups, _compare_by_cost(groups, {"a": -0.05, "b": -0.05}, everything=0.6))
    assert result.fp32_groups == [EVERYTHING] and result.fp32_nodes == ["a", "b", "c"]
    assert result.to_dict()["fp32_nodes"] == result.to_dict()["quantizable_nodes"] == 3


def _float_convs(path) -> set[str]:
    """Convolutions of a QDQ model whose weight is a float initializer (not dequantized from int8)."""
    graph = onnx.load(str(path)).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    return {n.name for n in graph.node if n.op_type == "Conv" and n.input[1] not in dequantized}


def test_keep_fp32_leaves_exactly_those_nodes_in_float(mobile_onnx):
    target = target_from_dict("fast-int8", FAST)
    keep = layer_groups(mobile_onnx)["Conv 3x3 depthwise"]
    runner = prepare_runner(target, mobile_onnx, (1, 3, 32, 32), keep_fp32=keep)
    assert _float_convs(runner.model_path) == set(keep)
    runner = prepare_runner(target, mobile_onnx, (1, 3, 32, 32))
    assert _float_convs(runner.model_path) == set()


def test_a_timed_search_records_every_trial_it_ran(mobile_onnx):
    result = il.choose_fp32_layers(target_from_dict("fast-int8", FAST), mobile_onnx, (1, 3, 32, 32))
    assert result.trials and all(t["kept"] == (t["ratio"]["high"] < 1) for t in result.trials)
    assert all(t["ratio"]["low"] <= t["ratio"]["median"] <= t["ratio"]["high"] for t in result.trials)
    assert set(result.fp32_nodes) <= set(result.groups[EVERYTHING])


def test_validate_deploys_the_measured_choice(monkeypatch, tmp_path):
    # the timing is faked: the fp32 model "wins", so the deployed artifact holds no int8 layer at all
    monkeypatch.setattr(il, "choose_fp32_layers",
                        lambda t, path, shape: Int8Layers(layer_groups(path), [EVERYTHING]))  # fmt: skip
    target = target_from_dict("fast-int8", {**FAST, "int8_layers": "measured"})
    model = resolve_model("cifar_resnet20")
    report = validate(model, resolve_model("cifar_resnet20"), target, tmp_path / "v")
    for side in (report["original"], report["pruned"]):
        assert side["int8_layers"]["fp32_groups"] == [EVERYTHING]
        assert side["int8_layers"]["fp32_nodes"] == side["int8_layers"]["quantizable_nodes"] > 20
        # every weight stays fp32: the deployed file is as large as the export (quantized: under 0.6 of it)
        assert side["memory"]["deployed_file_bytes"] > 0.95 * side["memory"]["model_file_bytes"]
    n = report["original"]["int8_layers"]["fp32_nodes"]
    assert f"| layers left in fp32 (measured faster here) | {n} of {n} nodes (every layer) |" in markdown(report)


def test_int8_layers_is_refused_where_it_cannot_apply():
    with pytest.raises(TargetError, match="int8_layers = 'measured' is for onnxruntime int8 targets"):
        target_from_dict("ov", {"backend": "openvino", "precision": "int8", "int8_layers": "measured"})
    with pytest.raises(TargetError, match="expected one of"):
        target_from_dict("ort", {**FAST, "int8_layers": "some"})
    r = CliRunner().invoke(main, ["validate", "a", "b", "--target", "cpu-ort", "--int8-layers", "measured",
                                  "--out", "o"])  # fmt: skip
    assert r.exit_code == 2 and "--int8-layers cannot be used with cpu-ort, which is not int8" in r.output
    r = CliRunner().invoke(main, ["validate", "a", "b", "--target", "cpu-openvino-int8", "--int8-layers",
                                  "measured", "--out", "o"])  # fmt: skip
    assert r.exit_code == 2 and "openvino quantizes every layer it takes" in r.output

