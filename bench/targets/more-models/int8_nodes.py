"""Where a dense model's time goes in onnxruntime fp32 against int8 (cpu-ort against cpu-ort-int8): kernel time
per operator type, from onnxruntime's profiler, for the models whose int8 ran slower than fp32 in the run of
results.md. Random weights, calibrated on random inputs: the nodes are those of validate's quantized graph
(calibration sets only the scales).

    python bench/targets/more-models/int8_nodes.py timm:lcnet_050 timm:fastvit_t8 \
      > bench/targets/more-models/int8-nodes.md
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from edgeprune.backends.onnxruntime import kernel_ms_by_op, profile_sessions
from edgeprune.export import export_onnx
from edgeprune.latency.profiler import build_model, model_input_shape
from edgeprune.targets import load_target

RUNS = 200  # profiled runs per model; the first 20 are left out as warmup


def by_op(target_name: str, path: Path, x: np.ndarray) -> dict[str, tuple[float, int]]:
    """Operator type -> (median kernel ms per run, nodes per run)."""
    runs = kernel_ms_by_op(profile_sessions(load_target(target_name), [str(path)], x, RUNS)[0])[20:]
    ops = {op for run in runs for op in run}
    return {op: (statistics.median(sum(r.get(op, [])) for r in runs), len(runs[-1].get(op, []))) for op in ops}


def main(models: list[str]) -> None:
    warnings.simplefilter("ignore")
    for name in models:
        target = load_target("cpu-ort")
        shape = model_input_shape(name, target)
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            export_onnx(build_model(name, target).eval(), torch.from_numpy(x), path)
            fp32, int8 = by_op("cpu-ort", path, x), by_op("cpu-ort-int8", path, x)
        print(f"\n### {name}\n")
        print(f"Kernel ms per run, summed: fp32 {sum(v[0] for v in fp32.values()):.2f}, "
              f"int8 {sum(v[0] for v in int8.values()):.2f}.\n")  # fmt: skip
        print("| op | fp32 ms | fp32 nodes | int8 ms | int8 nodes |\n|---|---:|---:|---:|---:|")
        for op in sorted(set(fp32) | set(int8), key=lambda o: -max(fp32.get(o, (0, 0))[0], int8.get(o, (0, 0))[0])):
            a, b = fp32.get(op, (0.0, 0)), int8.get(op, (0.0, 0))
            print(f"| {op} | {a[0]:.3f} | {a[1]} | {b[0]:.3f} | {b[1]} |")


if __name__ == "__main__":
    main(sys.argv[1:])
