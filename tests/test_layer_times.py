"""Per-layer attribution of runtime profiler times to module paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgeprune.backends.executorch import export_program
from edgeprune.export import export_onnx
from edgeprune.layer_times import (
    REORDERS,
    OnnxAttribution,
    attribute_engine_layers,
    attribute_xnnpack,
    layer_table,
    norm_to_conv,
    program_labels,
    torch_layer_times,
)
from edgeprune.models import create_model
from edgeprune.targets import load_target


@pytest.fixture(scope="module")
def resnet20(tmp_path_factory):
    model = create_model("cifar_resnet20").eval()
    x = torch.randn(1, 3, 32, 32)
    path = tmp_path_factory.mktemp("onnx") / "r20.onnx"
    export_onnx(model, x, path)
    return model, x, path


def test_norms_map_to_the_conv_they_follow(resnet20):
    model, x, _ = resnet20
    norms = norm_to_conv(model, x)
    assert norms["bn1"] == "conv1" and norms["layer2.1.bn2"] == "layer2.1.conv2"
    assert len(norms) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_fused_runtime_names_resolve_to_conv_paths(resnet20):
    model, x, path = resnet20
    att = OnnxAttribution(path, norm_to_conv(model, x))
    convs = {n: node for n, node in att.nodes.items() if node.op_type == "Conv"}
    labels = {att.label(name, "Conv") for name in convs}
    expected = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert labels == expected  # BatchNorm folded into each Conv: still named after the conv module
    # A runtime node named after the value it writes ("<value>_nchwc"), here the ReLU after block 1's conv1:
    relu = next(n for n in att.nodes.values() if n.op_type == "Relu" and "layer1.0" in str(n.metadata_props))
    assert att.label(relu.output[0] + "_nchwc", "Conv") == "layer1.0.conv1"
    assert att.label("ReorderOutput_token_7", "ReorderOutput") == REORDERS
    assert att.label("no_such_node", "Gather") == "(unattributed) Gather"


def test_torch_profiler_times_every_leaf_module(resnet20):
    model, x, _ = resnet20
    times, ops = torch_layer_times(model, x, runs=2)
    assert set(times) == {n for n, m in model.named_modules() if not list(m.children())}  # every leaf, nothing else
    assert all(op.startswith("aten::") and ms > 0 for op, ms in ops.items())
    # A conv module's range encloses its convolution ops, so the convs' layer times bound those ops' self times
    # (both per inference, from the same profile).
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    conv_ops = sum(ms for op, ms in ops.items() if "conv" in op)
    assert conv_ops > 0 and sum(times[n] for n in convs) >= conv_ops


def test_layer_table_shares_and_rest():
    a = {"ms_by_layer": {"c1": 3.0, "c2": 1.0, REORDERS: 1.0, "c3": 5.0}}
    a["macs_by_layer"] = {"c1": 10, "c2": 30, "c3": 60}
    b = {"ms_by_layer": {"c1": 1.0, "c3": 2.0, "c2": 0.5}}
    rows = layer_table(a, b, top=2)
    assert rows[2] == "| c3 | 5.000 | 2.000 | 50.0% | 60.0% | 0.83 |"
    assert rows[3] == "| c1 | 3.000 | 1.000 | 30.0% | 10.0% | 3.00 |"
    assert rows[4].startswith("| 2 more | 2.000 | 0.500 | 20.0% | 30.0% |")


def test_engine_layer_names_resolve_through_their_first_onnx_node(resnet20):
    """TensorRT names a fused layer after its ONNX nodes joined by ' + ' (TensorRT itself is not run here)."""
    model, x, path = resnet20
    att = OnnxAttribution(path, {})
    conv = next(n for n, node in att.nodes.items() if node.op_type == "Conv")
    times = attribute_engine_layers(
        {f"{conv} + node_relu": 2.0, "Reformatting CopyNode": 0.5}, path, norm_to_conv(model, x)
    )
    assert times == {"conv1": 2.0, "(engine) Reformatting CopyNode": 0.5}


class _Mobile(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = torch.nn.Conv2d(8, 8, 1)
        self.act = torch.nn.SiLU()
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = self.stem(x)
        return self.fc((self.act(self.pw(self.dw(y))) + y).mean((2, 3)))


def test_xnnpack_operators_are_matched_to_the_programs_nodes_in_the_order_they_ran():
    """XNNPACK names its operators by kind and number: the n-th of a kind is the program's n-th node of it, where
    the counts agree (a 1x1 conv runs as Fully Connected, SiLU as a sigmoid and a multiply); what cannot be
    matched keeps a row of its own, so the rows add up to every event."""
    labels = program_labels(export_program(_Mobile().eval(), (1, 3, 8, 8)))
    assert labels["MACs"] == ["stem", "dw", "pw", "fc"]
    events = [("Transpose (ND, X32) #1", 1.0), ("Convolution (NHWC, F32) IGEMM #1", 2.0),
              ("Convolution (NHWC, F32) DWConv #1", 3.0), ("Fully Connected (NC, F32) GEMM #1", 4.0),
              ("Sigmoid (NC) #1", 0.5), ("Multiply (ND) #1", 0.25), ("Add (ND) #1", 0.125), ("Clamp (NC) #1", 0.5),
              ("Mean (ND) Reduce2 #1", 0.0625), ("Fully Connected (NC, F32) GEMM #2", 5.0), ("DELEGATE_CALL", 0.75),
              ("native_call_slice_copy.Tensor_out", 0.375), ("Method::execute", 0.25)]  # fmt: skip
    by_layer, by_op = attribute_xnnpack(events, labels)
    assert [by_layer[k] for k in ("stem", "dw", "pw", "fc")] == [2.0, 3.0, 4.0, 5.0]
    assert by_layer["act · Sigmoid"] == 0.5 and by_layer["act · Multiply"] == 0.25
    assert by_layer["(model) · Add"] == 0.125 and by_layer["(model) · Mean"] == 0.0625
    assert by_layer[REORDERS] == 1.0 and by_layer["(unattributed) Clamp (NC)"] == 0.5
    assert by_layer["(runtime) delegate calls"] == 0.75 and by_layer["(runtime) between operators"] == 0.25
    assert by_layer["(unattributed) slice_copy.Tensor_out"] == 0.375
    assert sum(by_layer.values()) == sum(by_op.values()) == sum(ms for _, ms in events)
    assert by_op["Fully Connected (NC, F32) GEMM"] == 9.0
    # one conv more than the program has (the runtime split one): no conv is guessed at
    by_layer, _ = attribute_xnnpack(events[:2] + events[1:], labels)
    assert not {"stem", "dw", "pw", "fc"} & set(by_layer)
    assert by_layer["(unattributed) Convolution (NHWC, F32) IGEMM"] == 4.0


def test_a_runtime_that_cannot_profile_leaves_the_table_out_with_a_warning(monkeypatch, caplog):
    """Per-layer times are a report's extra: a runtime built without ETDump costs the table, not the validation."""
    import edgeprune.backends.executorch as executorch
    from edgeprune.backends.base import BackendError
    from edgeprune.layer_times import executorch_layer_times

    def refuse(*args, **kwargs):
        raise BackendError("executorch.devtools is not installed")

    monkeypatch.setattr(executorch, "profile_ops", refuse)
    x = torch.zeros(1, 3, 8, 8).numpy()
    # at_level also sets the capturing handler's level, which an earlier test in the same process can leave raised
    with caplog.at_level("WARNING", logger="edgeprune.layer_times"):
        assert executorch_layer_times(Path("m.pte"), _Mobile().eval(), load_target("cpu-xnnpack"), x) == ({}, {})
    assert "no per-layer times on cpu-xnnpack" in caplog.text and "devtools is not installed" in caplog.text
