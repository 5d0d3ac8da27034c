"""Shared fixtures: the fast model set, cached graphs, and networks with lively statistics."""

from __future__ import annotations

import functools
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from edgeprune.graph import build_graph
from edgeprune.latency import Profile, profiler
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import ProfileSettings
from edgeprune.prune.oracle import lively_model
from edgeprune.targets import load_target

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per xdist worker: two workers x two threads on two cores thrash (10x slower).
    torch.set_num_threads(1)

# The representative set every commit checks (issue: foundation, section 5).
FAST_MODELS = [
    "cifar_resnet56", "cifar_vgg16", "resnet50", "resnext50_32x4d", "mobilenet_v2", "mobilenet_v3_small",
    "densenet121", "efficientnet_b0", "shufflenet_v2_x0_5", "regnet_y_400mf", "googlenet", "squeezenet1_0",
    "convnext_tiny",
]  # fmt: skip


def build_model_and_graph(name: str):
    """(lively eval-mode model, its graph, input side), built anew."""
    model, size = lively_model(name)
    graph = build_graph(model, torch.randn(1, 3, size, size), model_name=name)
    return model, graph, size


model_and_graph = functools.cache(build_model_and_graph)  # once per test session


def group_of(graph, path, kind, index=0):
    """The group and unit position holding member (kind, path, index)."""
    for g in graph.groups:
        for u, unit in enumerate(g.units):
            if any(m.kind == kind and m.path == path and m.index == index for m in unit.members):
                return g, u
    raise AssertionError(f"no member {kind} {path}[{index}]")


@pytest.fixture(params=FAST_MODELS)
def fast_model(request):
    return (request.param, *model_and_graph(request.param))


@pytest.fixture(autouse=True)
def _default_sigchld():
    """A torch DataLoader with workers leaves its SIGCHLD handler in the process; an xdist worker that later
    waited on a subprocess died ("node down") in three full runs. Each test starts with the default."""
    import signal

    if hasattr(signal, "SIGCHLD"):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    yield


# latency profiles measured in tests, coarse and short: 2 grid points per axis, a short scan, 3 calibration
# plans, one timing round per micro-model
FAST = ProfileSettings(grid_fractions=(0.5, 1.0), micro_timing={"warmup": 1, "repeats": 3, "rounds": 1},
                       scan={"span": 4, "step": 2}, calibration_ratios=(0.0, 0.5), calibration_random=1,
                       calibration_blocked=1, calibration_planned=())  # fmt: skip


@pytest.fixture(scope="session")  # read only; shared by test_latency.py and test_calibration_line.py
def tiny_profile(tmp_path_factory):
    """A real but coarse cpu-ort profile of cifar_resnet20."""
    target = load_target("cpu-ort")
    fast = replace(target, warmup=2, repeats=5, rounds=1)
    path = tmp_path_factory.mktemp("prof") / "p.json"
    profile = profiler.profile_target(fast, ["cifar_resnet20"], path, progress=False, settings=FAST)
    return fast, path, profile


def assert_line_fits_its_points(profile: Profile, name: str) -> None:
    """The calibration line is the least-squares line through its points, priced as the profile prices them."""
    cal, model = profile.calibration[name], LatencyModel(profile, name)
    xs = [model.layers_ms(profile.model_layers(name, p)) for p in cal.points]
    assert [cal.scale, cal.offset_ms] == pytest.approx(list(np.polyfit(xs, [p["measured_ms"] for p in cal.points], 1)))
