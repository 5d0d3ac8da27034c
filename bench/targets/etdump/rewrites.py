"""Can YOLOv8n's time outside its layers on ExecuTorch/XNNPACK be taken back by rewriting the exported program?

The ETDump of YOLOv8n on cpu-xnnpack (report in this folder) shows the two nearest upsamplings and the eight
channel splits of the C2f blocks running in ExecuTorch's portable kernels, splitting the program into 11 XNNPACK
subgraphs with layout transposes (and, in int8, conversions) at every edge. Two exact rewrites are tried here,
each before lowering, and timed against the plain program by the shared harness (the target's rounds):
  slices:   every split as slices (XNNPACK runs slices);
  +deconv:  also every nearest 2x upsampling as a depthwise transposed convolution of ones (XNNPACK runs those).
Prints, per variant: the subgraphs and the ops left outside XNNPACK, the relative error against torch, the rows
of the per-layer table that are no layer, and the speed over the plain program (median of the round ratios and
its 95 % interval).

  python bench/targets/etdump/rewrites.py [SIDE] [TARGET ...]   > bench/targets/etdump/rewrites.txt
"""

from __future__ import annotations

import sys
import time
from unittest import mock

import numpy as np
import torch

from edgeprune import layer_times
from edgeprune.backends import executorch as ebk
from edgeprune.backends import get_backend, time_runners
from edgeprune.models import create_model
from edgeprune.targets import load_target

aten = torch.ops.aten


def split_as_slices(x, split_sizes, dim=0):
    out, start = [], 0
    for size in split_sizes:
        out.append(aten.slice.Tensor(x, dim, start, start + size))
        start += size
    return out


def split_tensor(x, split_size, dim=0):
    n = x.shape[dim]
    return split_as_slices(x, [min(split_size, n - i) for i in range(0, n, split_size)], dim)


def nearest_as_deconv(x, output_size, scale_factors):
    c, h, w = x.shape[1:]
    oh, ow = output_size if output_size is not None else (int(h * scale_factors[0]), int(w * scale_factors[1]))
    k = oh // h
    assert (oh, ow) == (k * h, k * w), "an integer scale only"
    return aten.conv_transpose2d.input(x, torch.ones(c, 1, k, k, dtype=x.dtype), None, [k, k], [0, 0], [0, 0], c)


SLICES = {aten.split_with_sizes.default: split_as_slices, aten.split.Tensor: split_tensor}
VARIANTS = {"plain": {}, "slices": SLICES, "+deconv": {**SLICES, aten.upsample_nearest2d.vec: nearest_as_deconv}}


def prepare(target, module, shape, table):
    """edgeprune's own ExecuTorch runner of ``module``, with ``table``'s decompositions run on the exported
    program before the rest of the lowering."""
    export = ebk.export_program

    def decomposed(m, input_shape):
        program = export(m, input_shape)
        return program.run_decompositions(table) if table else program

    with mock.patch.object(ebk, "export_program", decomposed):
        return get_backend("executorch").prepare(target, module=module, input_shape=shape)


def main(side: int, targets: list[str]) -> None:
    model = create_model("ultralytics:yolov8n.yaml", pretrained=True).eval()
    shape = (1, 3, side, side)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x)
    ref = (ref[0] if isinstance(ref, (tuple, list)) else ref).numpy()
    for name in targets:
        target = load_target(name)
        print(f"## {name}, YOLOv8n (COCO weights) at {side}², {time.strftime('%H:%M:%S', time.gmtime())} UTC")
        runners = {}
        for variant, table in VARIANTS.items():
            runners[variant] = prepare(target, model, shape, table)
            found, path = runners[variant].delegation, runners[variant].model_path
            out = runners[variant].run(x.numpy())
            layers, _ = layer_times.executorch_layer_times(path, model, target, x.numpy(), runs=10)
            rest = {k: round(v, 3) for k, v in layers.items() if k.startswith("(") and v}
            print(f"{variant}: {found.subgraphs} subgraphs, outside {dict(found.outside)}, relative error "
                  f"{float(np.linalg.norm(out - ref) / np.linalg.norm(ref)):.2e}, not a layer (ms): {rest}")
        timing = time_runners(runners, x.numpy(), target, reference="plain")
        for variant in runners:
            r = timing.speedup(variant) if variant != "plain" else None
            told = f"{r.median:.2f}x the plain program ({r.low:.2f}-{r.high:.2f})" if r else "the reference"
            print(f"  {variant}: {timing.stats[variant].median_ms:.2f} ms, {told}")
        print(f"done {time.strftime('%H:%M:%S', time.gmtime())} UTC\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 640, sys.argv[2:] or ["cpu-xnnpack", "cpu-xnnpack-int8"])
