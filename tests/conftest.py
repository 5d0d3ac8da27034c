"""Shared fixtures: the fast model set, cached graphs, and networks with lively statistics."""

from __future__ import annotations

import functools
import os

import pytest
import torch
import torch.nn as nn

from edgeprune.graph import build_graph
from edgeprune.models import create_model_for_size, get_entry

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per xdist worker: two workers x two threads on two cores thrash (10x slower).
    torch.set_num_threads(1)

# The representative set every commit checks (issue: foundation, section 5).
FAST_MODELS = [
    "cifar_resnet56", "cifar_vgg16", "resnet50", "resnext50_32x4d", "mobilenet_v2", "mobilenet_v3_small",
    "densenet121", "efficientnet_b0", "shufflenet_v2_x0_5", "regnet_y_400mf", "googlenet", "squeezenet1_0",
    "convnext_tiny",
]  # fmt: skip


def liven(model: nn.Module, size: int = 32, seed: int = 0) -> nn.Module:
    """Random norm affines and layer scales, then BN statistics calibrated on random inputs.

    Freshly initialized torchvision models can output constants (activations that fade through depth,
    1e-6 layer scales): an oracle comparison on such a model would pass whatever the pruning did.
    """
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            for name, p in m.named_parameters(recurse=False):
                if "layer_scale" in name:
                    p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
        for m in norms:
            m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        model.train()
        for _ in range(2):
            model(torch.randn(4, 3, size, size, generator=gen))
    return model.eval()


@functools.lru_cache(maxsize=None)
def model_and_graph(name: str):
    """(lively eval-mode model, its graph, input side); built once per test session."""
    size = get_entry(name).test_size
    torch.manual_seed(0)
    model = liven(create_model_for_size(name, size), size)
    graph = build_graph(model, torch.randn(1, 3, size, size), model_name=name)
    return model, graph, size


@pytest.fixture(params=FAST_MODELS)
def fast_model(request):
    return (request.param, *model_and_graph(request.param))
