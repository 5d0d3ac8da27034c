"""ResNet-56's option-A shortcuts lowered to XNNPACK as 1x1 convolutions instead of a strided slice and a gather.

The ETDump of ResNet-56 on cpu-xnnpack (tools/bench_nodes.py, docs/benchmarks/targets.md) has the shortcuts'
strided slices and channel gathers in ExecuTorch's portable kernels, splitting the program into 7 XNNPACK
subgraphs. `edgeprune.backends.executorch.lowered_form` now lowers each ChannelRemap as its equivalent 1x1
convolution. Per model (the pretrained dense ResNet-56 and a 30 % magnitude shrink) and target: the subgraphs
and the ops left outside XNNPACK, both ways, the outputs' relative difference, and the speed of the new program
over the old (both built here, timed together by the shared harness with the target's rounds: the median of
the round ratios and its 95 % interval).

  python bench/targets/etdump/remap.py > bench/targets/etdump/remap.txt
  python bench/targets/etdump/remap.py --top1 > bench/targets/etdump/remap-top1.txt
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import replace
from unittest import mock

import numpy as np
import torch

from edgeprune.backends import executorch as ebk
from edgeprune.backends import get_backend, time_runners
from edgeprune.graph import build_graph
from edgeprune.models import create_model
from edgeprune.prune import shrink, uniform_plan
from edgeprune.targets import load_target


def prepare(target, module, shape, as_before: bool):
    """edgeprune's own ExecuTorch runner of ``module``: lowered as it is now, or ``as_before`` the shortcut
    layer was lowered as a 1x1 convolution (the module as it is)."""
    backend = get_backend("executorch")
    if not as_before:
        return backend.prepare(target, module=module, input_shape=shape)
    with mock.patch.object(ebk, "lowered_form", lambda m: m):
        return backend.prepare(target, module=module, input_shape=shape)


def main() -> None:
    dense = create_model("cifar_resnet56", pretrained=True).eval()
    shape = (1, 3, 32, 32)
    graph = build_graph(dense, torch.zeros(shape), model_name="cifar_resnet56")
    models = {"dense": dense, "shrunk 30 %": shrink(dense, graph, uniform_plan(dense, graph, 0.3))[0].eval()}
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    for name in ("cpu-xnnpack", "cpu-xnnpack-int8"):
        target = load_target(name)
        for label, model in models.items():
            print(f"## {label} ResNet-56 on {name}, {time.strftime('%H:%M:%S', time.gmtime())} UTC")
            runners, outs = {}, {}
            for before in (True, False):
                key = "before" if before else "now"
                runners[key] = prepare(target, model, shape, before)
                found = runners[key].delegation
                outs[key] = runners[key].run(x.numpy())
                print(f"{key}: {found.subgraphs} subgraphs, outside {dict(found.outside)}")
            moved = float(np.linalg.norm(outs["now"] - outs["before"]) / np.linalg.norm(outs["before"]))
            print(f"relative difference of the outputs: {moved:.2e}")
            timing = time_runners(runners, x.numpy(), target, reference="now")
            r = timing.ratios["before"]  # the old program's time over the new one's
            print(f"before {timing.stats['before'].median_ms:.3f} ms, now {timing.stats['now'].median_ms:.3f} ms: "
                  f"{r.median:.2f}x ({r.low:.2f}-{r.high:.2f}, {r.rounds} rounds)\n")


def top1() -> None:
    """Top-1 of the pretrained ResNet-56 deployed in int8 both ways, on the lossless CIFAR-10 test images
    (calibrated on 256 of their train split): what the shortcuts' requantization costs, if anything."""
    from edgeprune.train.calibration import calibration_images
    from edgeprune.train.data import load_lossless_subset

    model = create_model("cifar_resnet56", pretrained=True).eval()
    x, y = load_lossless_subset("test")
    target = replace(load_target("cpu-xnnpack-int8"), calibration_count=256)
    images = calibration_images("cifar10-lossless", 256, model, "cifar_resnet56")
    batch = 100
    with torch.no_grad():
        print(f"torch fp32: {float((model(x).argmax(1) == y).float().mean()):.4f} on {len(y)} images")
    for before in (True, False):
        keep = mock.patch.object(ebk, "lowered_form", lambda m: m) if before else contextlib.nullcontext()
        with keep:
            runner = ebk.ExecutorchBackend().prepare(target, module=model, input_shape=(batch, 3, 32, 32),
                                                     calibration=images)  # fmt: skip
        n = len(y) // batch * batch
        pred = np.concatenate([runner.run(x[i : i + batch].numpy()).argmax(1) for i in range(0, n, batch)])
        print(f"{'before' if before else 'now'}: int8 top-1 {float((pred == y[:n].numpy()).mean()):.4f} on {n} images")


if __name__ == "__main__":
    top1() if sys.argv[1:] == ["--top1"] else main()
