"""torchvision segmentation and detection models: their network part traced with dict outputs, pruned by random
non-uniform plans against the oracle on every output tensor, handed back to torchvision (anchors, decoding
and NMS outside the trace), saved and reloaded, and exported to ONNX with every output checked."""

from __future__ import annotations

import random

import pytest
import torch

from edgeprune.export import check_onnx, export_onnx
from edgeprune.graph import build_graph, tree_tensors
from edgeprune.latency.variants import random_plan
from edgeprune.models import create_model, get_entry, list_models
from edgeprune.prune import load_pruned, prune_model, save_pruned
from edgeprune.prune.oracle import ORACLE_TOLERANCE, is_lively, lively_model, oracle_error

FAST = ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "ssdlite320_mobilenet_v3_large",
        "fasterrcnn_mobilenet_v3_large_fpn"]  # fmt: skip
# the ResNet-50 / VGG ones take 10-40 s each here
SLOW = ["fcn_resnet50", "retinanet_resnet50_fpn", "fcos_resnet50_fpn", "maskrcnn_resnet50_fpn", "ssd300_vgg16"]
MODELS = FAST + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW]


def lively(name: str):
    model, size = lively_model(name)
    x = torch.randn(2, 3, size, size)
    return model, build_graph(model, x[:1], model_name=name), x


def test_every_torchvision_dense_model_is_registered():
    names = set(list_models("torchvision-segmentation")) | set(list_models("torchvision-detection"))
    assert set(FAST + SLOW) <= names
    assert get_entry("ssdlite320_mobilenet_v3_large").input_size == (3, 320, 320)
    assert get_entry("lraspp_mobilenet_v3_large").input_size == (3, 520, 520)


@pytest.mark.parametrize("name", MODELS)
def test_random_plans_shrink_exactly_on_every_output(name):
    model, graph, x = lively(name)
    assert is_lively(model, x)  # every output depends on the input: the oracle is not vacuous
    with torch.no_grad():
        dense = tree_tensors(model(x))
    for seed, low in ((0, 0.2), (1, 0.6)):
        plan = random_plan(graph, random.Random(seed), low=low)
        assert plan.removed(graph), "the plan removes nothing"
        pruned, _ = prune_model(model, graph, plan)
        assert oracle_error(model, graph, plan, pruned, x) <= ORACLE_TOLERANCE
        with torch.no_grad():  # the outputs keep their shapes: their channels are frozen
            assert [t.shape for t in tree_tensors(pruned(x))] == [t.shape for t in dense]


def test_detector_outputs_are_torchvisions_raw_head_outputs():
    model, _, x = lively("ssdlite320_mobilenet_v3_large")
    with torch.no_grad():
        out = model(x)
    assert list(out) == ["bbox_regression", "cls_logits"]
    assert out["bbox_regression"].shape[-1] == 4 and out["cls_logits"].shape[-1] == 91
    rcnn, _, y = lively("fasterrcnn_mobilenet_v3_large_fpn")
    with torch.no_grad():
        keys = list(rcnn(y))
    assert keys[0].startswith("features.") and any(k.startswith("objectness.") for k in keys)


@pytest.mark.parametrize("name", ["ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_fpn"])
def test_pruned_detector_goes_back_to_torchvision_and_detects(name):
    import torchvision

    model, graph, x = lively(name)
    images = [torch.rand(3, x.shape[-1], x.shape[-1])]
    source = torchvision.models.get_model(name, weights=None, weights_backbone=None).eval()
    source.load_state_dict(model.state_dict())
    if hasattr(source, "roi_heads"):  # random weights score under the 0.05 default: keep every box
        source.roi_heads.score_thresh = model.roi_heads.score_thresh = 0.0
    with torch.no_grad():  # the round trip alone changes nothing: torchvision's own model answers the same
        expected, found = source(images)[0], model.as_torchvision().eval()(images)[0]
    assert len(expected["boxes"]) > 0
    for key in ("boxes", "labels", "scores"):
        torch.testing.assert_close(found[key], expected[key])
    pruned, _ = prune_model(model, graph, random_plan(graph, random.Random(3), low=0.3))
    detector = pruned.as_torchvision().eval()
    assert type(detector).__name__ in ("SSD", "FasterRCNN") and detector.backbone is pruned.backbone
    with torch.no_grad():
        found = detector(images)[0]
    assert set(found) == {"boxes", "labels", "scores"} and found["boxes"].shape[-1] == 4


def test_segmentation_model_goes_back_to_torchvision():
    model, graph, x = lively("lraspp_mobilenet_v3_large")
    pruned, _ = prune_model(model, graph, random_plan(graph, random.Random(2), low=0.3))
    with torch.no_grad():
        torch.testing.assert_close(pruned.as_torchvision().eval()(x)["out"], pruned(x))


def test_pruned_detector_saves_reloads_and_exports_every_output(tmp_path):
    model, graph, x = lively("ssdlite320_mobilenet_v3_large")
    pruned, spec = prune_model(model, graph, random_plan(graph, random.Random(5), low=0.4))
    save_pruned(pruned, spec, tmp_path / "p")
    loaded = load_pruned(tmp_path / "p").eval()
    with torch.no_grad():
        for a, b in zip(tree_tensors(loaded(x)), tree_tensors(pruned.eval()(x))):
            torch.testing.assert_close(a, b)
    result = export_onnx(loaded, x[:1], tmp_path / "m.onnx")
    import onnx

    assert [o.name for o in onnx.load(str(result.path)).graph.output] == ["bbox_regression", "cls_logits"]
    assert check_onnx(loaded, result.path, torch.randn(3, *x.shape[1:])) <= 1e-4  # every output, batch 3


def test_torchvision_weights_file_loads_by_torchvisions_module_paths(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    source = torchvision.models.get_model("lraspp_mobilenet_v3_large", weights=None, weights_backbone=None).eval()
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    model = create_model("lraspp_mobilenet_v3_large", weights=tmp_path / "w.safetensors").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x)["out"])


def test_calibrated_importance_weighs_every_output_of_a_detector():
    from edgeprune.prune.calibrate import measure_channels

    model, graph, x = lively("fasterrcnn_mobilenet_v3_large_fpn")
    stats = measure_channels(model, graph, torch.randn(4, *x.shape[1:]), batch_size=2)
    assert {g.id for g in graph.prunable_groups} <= set(stats.scores)
    scores = torch.cat([s.flatten() for s in stats.scores.values()])
    assert torch.isfinite(scores).all() and (scores > 0).any()


def test_a_pruned_mnasnet_and_its_weights_file_load_with_the_versions_torchvision_requires(tmp_path):
    # safetensors keeps tensors only; torchvision's MNASNet refuses a state without its module version
    from safetensors.torch import save_file

    model = create_model("mnasnet0_5").eval()
    x = torch.randn(1, 3, 96, 96)
    graph = build_graph(model, x, model_name="mnasnet0_5")
    pruned, spec = prune_model(model, graph, random_plan(graph, random.Random(0), low=0.3))
    save_pruned(pruned, spec, tmp_path / "p")
    with torch.no_grad():
        torch.testing.assert_close(load_pruned(tmp_path / "p").eval()(x), pruned.eval()(x))
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(create_model("mnasnet0_5", weights=tmp_path / "w.safetensors").eval()(x), model(x))
