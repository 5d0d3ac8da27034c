"""ResNet-56 and MobileNet-V2 quantized by PT2E with XNNPACK's stock quantizer and with edgeprune's
post-training one: whether the converted graphs have the same ops and the same output on one input.

    python bench/targets/x8-mbv2/same_graph.py
"""

from __future__ import annotations

import torch

from edgeprune.backends import executorch as ex
from edgeprune.models import create_model

stock = ex._import("executorch.backends.xnnpack.quantizer.xnnpack_quantizer").XNNPACKQuantizer
for name, shape in [("cifar_resnet56", (1, 3, 32, 32)), ("mobilenet_v2", (1, 3, 224, 224))]:
    model, x = create_model(name).eval(), torch.rand(shape)
    converted = [ex.quantize_program(ex.export_program(model, shape), shape, x.numpy(), quantizer=q)
                 for q in (stock(), None)]  # fmt: skip
    ops = [[str(n.target) for n in c.graph.nodes] for c in converted]
    diff = (converted[0].module()(x) - converted[1].module()(x)).abs().max().item()
    print(f"{name}: {len(ops[0])} ops, same ops: {ops[0] == ops[1]}, max output difference: {diff}")
