"""ONNX micro-models for one layer (conv+ReLU as runtimes fuse conv+BN+ReLU, or Gemm), built directly.

Built with onnx.helper (no torch export: milliseconds each), so the same files serve the kit that runs
on a device with only onnxruntime/TensorRT and numpy.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeprune.latency.layers import Geometry

OPSET = 17


def micro_model(g: Geometry, cin: int, cout: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    if g.op == "linear":
        x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [g.batch, cin])
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [g.batch, cout])
        w = numpy_helper.from_array(rng.standard_normal((cout, cin), dtype=np.float32) * 0.05, "W")
        b = numpy_helper.from_array(np.zeros(cout, np.float32), "B")
        nodes = [helper.make_node("Gemm", ["input", "W", "B"], ["output"], transB=1)]
        graph = helper.make_graph(nodes, "micro", [x], [y], [w, b])
    else:
        groups = cin if g.op == "dwconv" else (cin // g.group_width if g.op == "gconv" else 1)
        if g.op == "dwconv":
            cout = cin
        pad, dims = g.kernel // 2, g.dims
        out = [(d + 2 * pad - g.kernel) // g.stride + 1 for d in g.spatial()]
        x = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(g.input_shape(cin)))
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [g.batch, cout, *out])
        kernel = (cout, cin // groups, *[g.kernel] * dims)
        w = numpy_helper.from_array(rng.standard_normal(kernel, dtype=np.float32) * 0.05, "W")
        b = numpy_helper.from_array(np.zeros(cout, np.float32), "B")
        conv = helper.make_node(
            "Conv", ["input", "W", "B"], ["conv"], kernel_shape=[g.kernel] * dims,
            strides=[g.stride] * dims, pads=[pad] * 2 * dims, group=groups,
        )  # fmt: skip
        nodes = [conv, helper.make_node("Relu", ["conv"], ["output"])]
        graph = helper.make_graph(nodes, "micro", [x], [y], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def input_for(g: Geometry, cin: int) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(g.input_shape(cin), dtype=np.float32)
