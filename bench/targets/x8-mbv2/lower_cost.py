"""Seconds per stage of building one int8 XNNPACK micro-model (a 1x1 conv, 96 -> 88 channels at 14x14, as a
MobileNet-V2 table point), with XNNPACK's stock quantizer and with edgeprune's post-training one, alternating,
after one warm-up build. Writes lower_cost.json beside this file.

    python bench/targets/x8-mbv2/lower_cost.py [REPEATS]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from edgeprune.backends import executorch as ex
from edgeprune.backends.quantize import calibration_for
from edgeprune.targets import load_target

repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
target = load_target("cpu-xnnpack-int8")
stock = ex._import("executorch.backends.xnnpack.quantizer.xnnpack_quantizer").XNNPACKQuantizer
exir = ex._import("executorch.exir")
partitioner = ex._import("executorch.backends.xnnpack.partition.xnnpack_partitioner").XnnpackPartitioner
model = torch.nn.Sequential(torch.nn.Conv2d(96, 88, 1), torch.nn.ReLU()).eval()
shape = (1, 96, 14, 14)
samples, _ = calibration_for(target, None, shape)
kinds = {"stock": stock, "post-training": lambda: None}  # None: quantize_program's own


def build(kind: str) -> dict[str, float]:
    t0 = time.perf_counter()
    program = ex.fold_constants(ex.export_program(model, shape))
    t1 = time.perf_counter()
    program = ex.quantize_program(program, shape, samples, quantizer=kinds[kind]())
    t2 = time.perf_counter()
    exir.to_edge_transform_and_lower(program, partitioner=[partitioner()]).to_executorch()
    t3 = time.perf_counter()
    return {"export": t1 - t0, "quantize": t2 - t1, "lower": t3 - t2, "total": t3 - t0}


build("stock"), build("post-training")  # warm-up: first-call imports and caches
runs = {kind: [] for kind in kinds}
for _ in range(repeats):
    for kind in kinds:
        runs[kind].append(build(kind))
result = {kind: {stage: round(statistics.median(r[stage] for r in rs), 3) for stage in rs[0]}
          for kind, rs in runs.items()}  # fmt: skip
result["repeats"] = repeats
print(json.dumps(result, indent=1))
(Path(__file__).parent / "lower_cost.json").write_text(json.dumps(result, indent=1) + "\n")
