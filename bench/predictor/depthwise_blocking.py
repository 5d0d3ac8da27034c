"""A depthwise conv on and off onnxruntime's channel blocking, alone and inside an MBConv block (kernel times).

Each case is a small ONNX model run under onnxruntime's profiler (`tools/bench_nodes.py`'s method); the table
gives the median kernel ms of every node, layout reorders included, so the blocked (NCHWc) kernels and the
plain ones (FusedConv) of the same conv can be set side by side. Alone is how a profile's micro-model times a
layer; in the block (1x1 expand from 80 channels, the depthwise conv, 1x1 project back to 80) is how it runs
in MnasNet's 14x14 stage.

    python bench/predictor/depthwise_blocking.py --out depthwise-blocking [--channels 448 462 480]

Writes NAME.json and NAME.md beside this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from edgeprune.atomic import atomic_write_text
from edgeprune.backends.onnxruntime import kernel_ms_by_op, profile_sessions
from edgeprune.export import export_onnx
from edgeprune.targets import load_target

HERE = Path(__file__).parent
WARMUP, RUNS, SIDE, STREAM = 20, 300, 14, 80


def case(channels: int, in_block: bool) -> tuple[nn.Module, tuple[int, ...]]:
    dw = [nn.Conv2d(channels, channels, 3, padding=1, groups=channels), nn.ReLU()]
    if not in_block:
        return nn.Sequential(*dw).eval(), (1, channels, SIDE, SIDE)
    layers = [nn.Conv2d(STREAM, channels, 1), nn.ReLU(), *dw, nn.Conv2d(channels, STREAM, 1)]
    return nn.Sequential(*layers).eval(), (1, STREAM, SIDE, SIDE)


def node_ms(events: list[dict]) -> dict[str, float]:
    """'op: node' -> median kernel ms per run after the warmup."""
    runs = kernel_ms_by_op(events, by_node=True)[WARMUP:]
    return {k: statistics.median(sum(r.get(k, [])) for r in runs) for k in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, nargs="+", default=[448, 462, 480])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    target = load_target("cpu-ort")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in args.channels:
            for in_block in (False, True):
                model, shape = case(c, in_block)
                path = Path(tmp) / f"c{c}-{int(in_block)}.onnx"
                export_onnx(model, torch.randn(*shape), path)
                x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
                nodes = node_ms(profile_sessions(target, [path], x, WARMUP + RUNS, 10)[0])
                rows.append({"channels": c, "in_block": in_block, "nodes": nodes, "total_ms": sum(nodes.values())})
    atomic_write_text(HERE / f"{args.out}.json", json.dumps(rows, indent=1))
    lines = [f"Depthwise 3x3 conv at {SIDE}x{SIDE} on `cpu-ort`: median kernel ms per node "
             "(`python bench/predictor/depthwise_blocking.py`)", "",
             "| channels | where | nodes (op: name, ms) | all kernels |", "|---:|---|---|---:|"]  # fmt: skip
    for r in rows:
        nodes = "; ".join(f"{k} {v:.3f}" for k, v in r["nodes"].items())
        where = "in a block" if r["in_block"] else "alone"
        lines.append(f"| {r['channels']} | {where} | {nodes} | {r['total_ms']:.3f} |")
    atomic_write_text(HERE / f"{args.out}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
