"""Ultralytics detectors (ultralytics:<file>): traced through their layer list, C2f / C3k2 / C2PSA blocks and
Detect head, pruned by random non-uniform plans against the oracle on every raw output, shrunk into a model
Ultralytics still runs, saved and reloaded from arch.json + safetensors, exported to ONNX; the real COCO
checkpoint; clear errors for what cannot build."""

from __future__ import annotations

import copy
import functools
import json
import random
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from conftest import group_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprune.errors import InputError, MissingError, MissingExtraError
from edgeprune.export import check_onnx, export_onnx
from edgeprune.graph import build_graph
from edgeprune.graph.groups import CONV_OUT
from edgeprune.latency.costs import MacsCost
from edgeprune.latency.layers import collect_layers
from edgeprune.latency.variants import random_plan
from edgeprune.models import create_model, get_entry, list_models
from edgeprune.models.layers import BranchConstant
from edgeprune.models.ultralytics_models import CHECKED, _supported
from edgeprune.paths import data_root
from edgeprune.prune import Plan, load_pruned, prune_model, save_pruned, shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, masked_forward, oracle_error, relative_error

SIZE = 128  # the P5 map is 4 x 4
CHECKPOINT = "yolov8n.pt"


@functools.cache
def lively(name: str):
    """(livened model, graph) of ultralytics:NAME built from its yaml with random weights."""
    torch.manual_seed(0)
    model = liven(create_model(f"ultralytics:{name}"), SIZE)
    return model, build_graph(model, torch.randn(1, 3, SIZE, SIZE), model_name=f"ultralytics:{name}")


def batch(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))


def macs(model: nn.Module) -> float:
    return sum(MacsCost().layer(layer, layer.cin, layer.cout) for layer in collect_layers(model, (1, 3, SIZE, SIZE)))


class Decoded(nn.Module):
    """Ultralytics' own inference of a DetectionModel (boxes decoded through DFL and the anchors), under the
    same module paths as the YoloRaw that holds it, so the oracle's masks apply to it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


def head_of(graph_model: nn.Module) -> tuple[str, nn.Module]:
    path = f"model.model.{len(graph_model.model.model) - 1}"
    return path, graph_model.get_submodule(path)


def assert_head_outputs_frozen(model: nn.Module, graph) -> int:
    """The head's last convs (box distributions, class logits, a pose head's keypoints, an OBB head's angles;
    both branches of a one-to-one head) are the model's output: every output channel frozen. Returns how many
    convs were checked."""
    path, head = head_of(model)
    convs = [f"{path}.{prefix}{stack}.{i}.{len(getattr(head, prefix + stack)[i]) - 1}"
             for prefix in ("", "one2one_") if hasattr(head, f"{prefix}cv2")
             for stack in ("cv2", "cv3", "cv4") if hasattr(head, prefix + stack) for i in range(head.nl)]  # fmt: skip
    for conv in convs:
        units = [u for g in graph.groups for u in g.units if any(m.path == conv and m.kind == CONV_OUT
                                                                 for m in u.members)]  # fmt: skip
        assert len(units) == model.get_submodule(conv).out_channels
        assert all(u.frozen == "model output" for u in units), conv
    return len(convs)


@pytest.mark.parametrize("name", ["yolov8n.yaml", "yolo11n.yaml"])
def test_random_plans_shrink_exactly_and_keep_the_head_outputs(name):
    model, graph = lively(name)
    assert list_models("ultralytics") == [f"ultralytics:{n}" for n in sorted(CHECKED)]
    assert get_entry(f"ultralytics:{name}").input_size == (3, 640, 640)
    assert len(graph.prunable_groups) >= 40
    # Every C2f / C3k2 splits by its width c: the graph records it, so shrink rewrites it.
    c2f = [p for p, m in model.named_modules() if type(m).__name__ in ("C2f", "C3k2")]
    assert {s.path for s in graph.sizes if s.attr == "c"} >= set(c2f) and len(c2f) == 8
    assert assert_head_outputs_frozen(model, graph) == 6

    @settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(seed=st.integers(0, 2**31), low=st.floats(0.05, 0.8))
    def prop(seed, low):
        plan = random_plan(graph, random.Random(seed), low=low)
        pruned, _ = shrink(model, graph, plan)
        assert oracle_error(model, graph, plan, pruned, batch()) <= ORACLE_TOLERANCE
        for block in c2f:
            shrunk = pruned.get_submodule(block)
            assert 2 * shrunk.c == shrunk.cv1.conv.out_channels <= 2 * model.get_submodule(block).c

    prop()


@pytest.mark.parametrize(("name", "outputs"), [("yolov9t.yaml", 6), ("yolo26n.yaml", 12), ("yolov8n-pose.yaml", 9),
                                               ("yolo11n-obb.yaml", 9), ("yolo26n-obb.yaml", 18)])  # fmt: skip
def test_other_generations_and_tasks_prune_exactly(name, outputs):
    """YOLOv9's ELAN blocks split like C2f; YOLO26 adds a one-to-one head branch (DFL-free boxes); pose and OBB
    heads add a third stack (keypoints, angles) whose outputs are the model's too."""
    model, graph = lively(name)
    assert assert_head_outputs_frozen(model, graph) == outputs
    plan = random_plan(graph, random.Random(4), low=0.1)
    pruned, _ = shrink(model, graph, plan)
    assert macs(pruned) < macs(model)
    assert oracle_error(model, graph, plan, pruned, batch()) <= ORACLE_TOLERANCE


@pytest.mark.parametrize(("name", "branch"), [("yolo26n-pose.yaml", "cv4_sigma"), ("yolo26n-seg.yaml", "proto.semseg")])
def test_yolo26_branches_only_training_runs_prune_with_what_feeds_them(name, branch):
    """YOLO26 pose's keypoint spreads and YOLO26 segmentation's semantic logits are computed in training only:
    the trace reaches them, so their inputs are cut with the layers that feed them and the pruned model trains."""
    model, graph = lively(name)
    plan = random_plan(graph, random.Random(6), low=0.2)
    pruned, _ = shrink(model, graph, plan)
    assert oracle_error(model, graph, plan, pruned, batch()) <= ORACLE_TOLERANCE
    _, head = head_of(pruned)
    _, dense = head_of(model)
    convs = [m for m in head.get_submodule(branch).modules() if isinstance(m, nn.Conv2d)]
    before = [m for m in dense.get_submodule(branch).modules() if isinstance(m, nn.Conv2d)]
    assert sum(c.in_channels for c in convs) < sum(c.in_channels for c in before)  # cut with what feeds them
    net = copy.deepcopy(pruned.model).train()
    preds = net(batch())  # the training forward, every branch
    keys = preds["one2many"] if "one2many" in preds else preds
    assert ("kpts_sigma" in keys) if "sigma" in branch else isinstance(keys["proto"], tuple)


def test_the_shrunk_detection_model_runs_as_ultralytics_runs_it():
    model, graph = lively("yolo11n.yaml")
    plan = random_plan(graph, random.Random(5), low=0.2)
    pruned, _ = shrink(model, graph, plan)
    assert macs(pruned) < 0.8 * macs(model)
    x = batch()
    with torch.no_grad():
        decoded = Decoded(pruned.model).eval()(x)  # (batch, 4 boxes + 80 classes, anchors)
        expected = masked_forward(Decoded(model.model).eval(), graph, plan, x)
        assert decoded.shape == (2, 84, 16**2 + 8**2 + 4**2)
        assert relative_error(decoded, expected) <= ORACLE_TOLERANCE
        assert relative_error(decoded, Decoded(model.model).eval()(x)) > 1e-2  # pruning changed the answer
        # Ultralytics' exporter runs C2f by split((c, c)): the rewritten width keeps it working
        split = copy.deepcopy(pruned.model)
        for m in split.modules():
            if type(m).__name__ in ("C2f", "C3k2"):
                m.forward = m.forward_split
        torch.testing.assert_close(Decoded(split).eval()(x), decoded)
    _, head = head_of(pruned)
    assert (head.nc, head.no, head.reg_max) == (80, 80 + 64, 16)


def test_segment_head_prunes_through_the_prototypes_upsampling():
    model, graph = lively("yolov8n-seg.yaml")
    up = "model.model.22.proto.upsample"  # a ConvTranspose2d: its inputs and outputs prune with their neighbours
    assert group_of(graph, up, "conv_in")[0].prunable and group_of(graph, up, CONV_OUT)[0].prunable
    plan = random_plan(graph, random.Random(2), low=0.1)
    pruned, changes = shrink(model, graph, plan)
    assert oracle_error(model, graph, plan, pruned, batch()) <= ORACLE_TOLERANCE
    proto = pruned.model.model[22].proto
    assert proto.upsample.in_channels == proto.cv1.conv.out_channels < 64
    assert proto.upsample.out_channels == proto.cv2.conv.in_channels < 64
    assert proto.cv3.conv.out_channels == 32  # the prototypes are the model's output
    assert changes[f"{up}"]["in_channels"] == proto.upsample.in_channels


def test_pruned_model_exports_to_onnx_and_onnxruntime_matches(tmp_path):
    model, graph = lively("yolov8n.yaml")
    pruned, _ = shrink(model, graph, random_plan(graph, random.Random(9)))
    export_onnx(pruned, batch(1), tmp_path / "m.onnx")
    assert check_onnx(pruned, tmp_path / "m.onnx", batch(3)) <= 1e-4  # every raw output, dynamic batch


@pytest.mark.parametrize(("name", "count"), [("yolov8n.yaml", 6), ("yolo11n.yaml", 12)])
def test_bottlenecks_go_whole_and_the_shared_activation_stays(name, count, tmp_path):
    """A C2f / C3k2 bottleneck ends conv -> norm -> SiLU before its addition, and that SiLU is one module
    every Ultralytics conv shares: removing the bottleneck folds it into the constant and replaces it at
    that conv alone. The model saves and reloads."""
    model, graph = lively(name)
    assert len(graph.branches) == count
    plan = Plan(graph.model_name, graph.fingerprint, {g: [] for g in graph.branches})
    pruned, spec = prune_model(model, graph, plan)
    assert oracle_error(model, graph, plan, pruned, batch()) <= ORACLE_TOLERANCE
    assert sum(isinstance(m, BranchConstant) for m in pruned.modules()) == count
    folded = [type(model.get_submodule(b.tail_act)) for b in graph.branches.values()]
    assert folded.count(nn.SiLU) >= count - 1  # YOLO11's attention FFN ends in a conv without activation
    assert all(isinstance(pruned.get_submodule(b.tail_act), nn.Identity) for b in graph.branches.values())

    def silu(net: nn.Module) -> int:
        return sum(isinstance(m, nn.SiLU) for _, m in net.named_modules(remove_duplicate=False))

    assert silu(pruned) == silu(model) - folded.count(nn.SiLU)
    save_pruned(pruned, spec, tmp_path)
    x = batch()
    with torch.no_grad():
        torch.testing.assert_close(load_pruned(tmp_path).eval()(x), pruned.eval()(x))


@pytest.fixture(scope="module")
def checkpoint():
    root = data_root()
    path = root / "pretrained" / "ultralytics" / CHECKPOINT if root is not None else None
    if path is None or not path.is_file():
        pytest.skip(f"{CHECKPOINT} is not in the data folder here")
    return path


def test_real_checkpoint_prunes_saves_and_reloads_without_the_file(tmp_path, checkpoint):
    from ultralytics import YOLO

    own = tmp_path / "mine.pt"
    shutil.copy(checkpoint, own)
    model = create_model(f"ultralytics:{own}").eval()
    x = batch()
    with torch.no_grad():  # the raw outputs are Ultralytics' own, before decoding
        raw = YOLO(str(checkpoint)).model.float().eval()(x)[1]
        torch.testing.assert_close(model(x), torch.cat([raw["boxes"], raw["scores"]], 1))
    graph = build_graph(model, x[:1], model_name=f"ultralytics:{own}")
    plan = random_plan(graph, random.Random(0), low=0.5)
    pruned, spec = prune_model(model, graph, plan)
    assert oracle_error(model, graph, plan, pruned, x) <= ORACLE_TOLERANCE
    save_pruned(pruned, spec, tmp_path / "p")
    kwargs = json.loads((tmp_path / "p" / "arch.json").read_text())["model_kwargs"]
    assert kwargs["cfg"]["yaml_file"] == "yolov8n.yaml" and kwargs["names"]["0"] == "person"
    own.unlink()  # the arch spec holds the architecture: the checkpoint is not read again
    loaded = load_pruned(tmp_path / "p").eval()
    assert loaded.model.names[79] == "toothbrush"
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), pruned.eval()(x))
    # pretrained=True for a yaml name finds the same checkpoint in the data folder
    assert get_entry("ultralytics:yolov8n.yaml").has_pretrained and get_entry(f"ultralytics:{own}").has_pretrained
    with torch.no_grad():
        torch.testing.assert_close(create_model("ultralytics:yolov8n.yaml", pretrained=True).eval()(x), model(x))


def test_what_cannot_build_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="Ultralytics cannot build yolov8q.yaml"):
        create_model("ultralytics:yolov8q.yaml")
    bad = tmp_path / "net.yaml"
    bad.write_text("backbone: [[-1, 1, NoSuchBlock, [64]]]\nhead: []\n")
    with pytest.raises(InputError, match=f"Ultralytics cannot build {bad}"):
        create_model(f"ultralytics:{bad}")
    with pytest.raises(InputError, match="an Ultralytics track model; edgeprune handles detect, segment, pose, obb"):
        _supported(nn.Identity(), "track", "future.yaml")  # a task a later Ultralytics may add
    with pytest.raises(InputError, match="rtdetr-l.yaml: its RTDETRDecoder head is not handled"):
        create_model("ultralytics:rtdetr-l.yaml")
    with pytest.raises(InputError, match="expected ultralytics:<architecture .yaml>"):
        create_model("ultralytics:yolov8n")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "state.pt")
    with pytest.raises(InputError, match=f"{tmp_path / 'state.pt'}: expected an Ultralytics checkpoint"):
        create_model(f"ultralytics:{tmp_path / 'state.pt'}")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt: not an Ultralytics checkpoint"):
        create_model(f"ultralytics:{tmp_path / 'junk.pt'}")
    with pytest.raises(MissingError, match="nowhere.pt does not exist"):
        create_model(f"ultralytics:{tmp_path / 'nowhere.pt'}")
    monkeypatch.setenv("EDGEPRUNE_DATA", str(tmp_path))  # a data folder without pretrained/ultralytics/
    assert not get_entry("ultralytics:yolov8n.yaml").has_pretrained
    with pytest.raises(InputError, match="no pretrained weights"):
        create_model("ultralytics:yolov8n.yaml", pretrained=True)
    for module in ("ultralytics", "ultralytics.nn.tasks"):
        monkeypatch.setitem(sys.modules, module, None)  # import ultralytics now raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'edgeprune\[ultralytics\]'"):
        create_model("ultralytics:yolov8n.yaml")


def test_importing_edgeprune_does_not_import_ultralytics():
    code = "import sys, edgeprune.models, edgeprune.graph, edgeprune.prune; print('ultralytics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("name", ["yolov8n.yaml", "yolo11n.yaml", "yolov8n-seg.yaml", "yolo26n.yaml",
                                  "yolov8n-pose.yaml", "yolo11n-obb.yaml", "yolo26n-obb.yaml", "yolo26n-pose.yaml",
                                  "yolo26n-seg.yaml"])  # fmt: skip
def test_raw_outputs_decode_to_what_the_model_answers(name):
    """A deployed artifact computes YoloRaw's raw outputs; the head decodes them to the model's own eval answer
    (boxes and scores; a segmenter's mask coefficients and prototypes; YOLO26's end-to-end top detections)."""
    from edgeprune.train.detect_deployed import decode_raw, deployed_detector

    model, _ = lively(name)
    x = batch()
    with torch.no_grad():
        expected = copy.deepcopy(model.model).eval()(x)[0]
        decoded, _ = deployed_detector(model.model, copy.deepcopy(model).eval())(x)
    if isinstance(expected, tuple):  # Segment: (detections, prototypes)
        torch.testing.assert_close(decoded[1], expected[1])
        decoded, expected = decoded[0], expected[0]
    assert decoded.shape == expected.shape
    torch.testing.assert_close(decoded, expected)
    with pytest.raises(InputError, match="not this detector's raw outputs"):
        decode_raw(model.model.model[-1], torch.zeros(2, 10), (SIZE, SIZE))
