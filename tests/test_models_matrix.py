"""The model matrix: every registered model is traced, shrunk by a seeded random uneven plan, and checked
against the masked-equivalence oracle; a few of each kind also go through ONNX and onnxruntime.

The default run keeps FAST_MATRIX; ``pytest -m slow -k matrix`` runs every other registered model, and the
checked timm models (``timm:<name>``, edgeprune.models.timm_models.CHECKED) through ONNX as well (``make zoo``
adds MACs, ONNX and peak memory for all of them). timm families that cannot be handled fail with a clear error.
"""

from __future__ import annotations

import functools
import random

import pytest
import torch
from conftest import build_model_and_graph, model_and_graph

from edgeprune.export import check_onnx, export_onnx
from edgeprune.latency.variants import random_plan
from edgeprune.models import list_models
from edgeprune.prune import shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE, check_shrunk, is_lively, output_error

# One or two of each kind: a CIFAR ResNet (option-A shortcuts), a CIFAR VGG, an ImageNet ResNet, an
# inverted-residual net with depthwise convs, and channel split + shuffle. Through ONNX as well: the ones
# whose export differs most (an index-map shortcut; flatten into a linear; shuffle).
# timm: a mobile CNN, and Res2Net (splits its channels by a width attribute that shrink rewrites).
FAST_MATRIX = ["cifar_resnet20", "cifar_vgg16", "resnet18", "mobilenet_v2", "shufflenet_v2_x0_5", "timm:lcnet_050",
               "timm:res2net50_14w_8s"]  # fmt: skip
FAST_ONNX = ["cifar_resnet20", "cifar_vgg16", "shufflenet_v2_x0_5", "timm:lcnet_050"]
# Every checked timm model also goes through ONNX (slow beyond the fast one).
ONNX = FAST_ONNX + [n for n in list_models("timm") if n not in FAST_ONNX]


def shrunk_by_random_plan(name: str, build=build_model_and_graph):
    """(lively model, graph, plan, shrunk model, input side): each group keeps a random share of random channels,
    seeded by the model's name."""
    model, graph, size = build(name)
    plan = random_plan(graph, random.Random(name))
    pruned, _ = shrink(model, graph, plan)
    return model, graph, plan, pruned, size


@functools.cache
def fast_shrunk(name: str):
    """The fast few share the session's cached graphs; the slow rest are built anew and freed after each test."""
    return shrunk_by_random_plan(name, model_and_graph)


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in FAST_MATRIX else pytest.mark.slow)
                                  for n in list_models()])  # fmt: skip
def test_matrix_random_plan_shrinks_exactly(name):
    model, graph, plan, pruned, size = fast_shrunk(name) if name in FAST_MATRIX else shrunk_by_random_plan(name)
    assert is_lively(model, torch.randn(2, 3, size, size)), f"{name}: output ignores the input (vacuous oracle)"
    groups = graph.prunable_groups
    assert groups, f"{name}: no prunable channel group"
    kept_share = {len(plan.keep.get(g.id, range(g.size))) / g.size for g in groups}
    assert len(kept_share) > 1 or len(groups) == 1, f"{name}: the plan is uniform"
    if plan.removed(graph):
        assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
        # The removed channels matter: otherwise the oracle below would pass whatever shrink did.
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            assert output_error(pruned(x), model(x)) > 1e-2, f"{name}: pruning does not change the output"
    assert check_shrunk(model, graph, plan, pruned, (3, size, size)) <= ORACLE_TOLERANCE


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in FAST_ONNX else pytest.mark.slow) for n in ONNX])
def test_matrix_shrunk_model_exports_and_onnxruntime_matches(tmp_path, name):
    *_, pruned, size = fast_shrunk(name) if name in FAST_MATRIX else shrunk_by_random_plan(name)
    export_onnx(pruned, torch.randn(1, 3, size, size), tmp_path / "m.onnx")
    assert check_onnx(pruned, tmp_path / "m.onnx", torch.randn(3, 3, size, size)) <= 1e-4  # dynamic batch


@pytest.mark.parametrize("name", ["timm:mobilevit_xxs", "timm:efficientvit_b0"])
def test_matrix_timm_blocks_with_code_on_shapes_and_devices_prune_whole(name):
    """Their attention blocks branch on the feature map's size (MobileViT) or read the tensor's device
    (EfficientViT): traced at the input size, nothing is kept whole and the blocks' own layers prune."""
    model, graph, plan, pruned, size = shrunk_by_random_plan(name)
    assert not any("kept whole" in (g.frozen or "") for g in graph.groups)
    block = "stages.2.1." if "mobilevit" in name else "stages.2.blocks.1.context_module."
    assert any(m.path.startswith(block) for g in graph.prunable_groups for u in g.units for m in u.members)
    assert check_shrunk(model, graph, plan, pruned, (3, size, size)) <= ORACLE_TOLERANCE
