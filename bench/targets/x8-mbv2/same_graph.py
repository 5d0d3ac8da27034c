"""ResNet-56 and MobileNet-V2 quantized by PT2E with XNNPACK's stock quantizer and with edgeprune's
post-training one: whether the converted graphs have the same ops and the same output on one input.

    python bench/targets/x8-mbv2/same_graph.py
"""

from __future__ import annotations

import torch

from edgeprune.backends import executorch as ex
from edgeprune.models import create_model

quantizers = ex._import("executorch.backends.xnnpack.quantizer.xnnpack_quantizer")
pt2e = ex._import("torchao.quantization.pt2e.quantize_pt2e")
config = quantizers.get_symmetric_quantization_config(is_per_channel=True)
for name, shape in [("cifar_resnet56", (1, 3, 32, 32)), ("mobilenet_v2", (1, 3, 224, 224))]:
    model, x = create_model(name).eval(), torch.rand(shape)
    converted = []
    for quantizer in (quantizers.XNNPACKQuantizer(), ex.post_training_quantizer(quantizers)):
        observed = pt2e.prepare_pt2e(ex.export_program(model, shape).module(), quantizer.set_global(config))
        observed(x)
        converted.append(pt2e.convert_pt2e(observed))
    ops = [[str(n.target) for n in c.graph.nodes] for c in converted]
    diff = (converted[0](x) - converted[1](x)).abs().max().item()
    print(f"{name}: {len(ops[0])} ops, same ops: {ops[0] == ops[1]}, max output difference: {diff}")
