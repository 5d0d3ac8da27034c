"""Where MobileNet-V1's predicted and measured savings part: each conv's kernel time inside the network
(onnxruntime's profiler) beside its term in the predictor, for the dense model and three plans at half the MACs.

MobileNet-V1 is a chain, so the i-th conv node onnxruntime runs is the i-th conv the model calls (checked:
the counts must match). Savings are summed over the layers before and from the 14x14 stage (``--split``,
the index of its first layer); a predicted saving is the change in the layer's term times the model's
calibration scale, the part of it a plan's ms moves by.

    python bench/planner-peer/normalization/per_layer.py \
        --profile bench/planner-peer/unbenchmarked/profile-cpu-ort-8.json --out per-layer

Writes NAME.json and NAME.md beside this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

TOOLS = Path(__file__).resolve().parents[3] / "tools"
sys.path.insert(0, str(TOOLS))
from bench_planner import CEILING, variants  # noqa: E402

from edgeprune.atomic import atomic_write_text  # noqa: E402
from edgeprune.backends.onnxruntime import kernel_ms_by_op, profile_sessions  # noqa: E402
from edgeprune.export import export_onnx  # noqa: E402
from edgeprune.latency import Profile, collect_layers  # noqa: E402
from edgeprune.latency.model import LatencyModel  # noqa: E402
from edgeprune.latency.profiler import model_input_shape  # noqa: E402
from edgeprune.plan.planner import Budget, PlanConstraints  # noqa: E402
from edgeprune.targets import load_target  # noqa: E402

HERE = Path(__file__).parent
WARMUP, RUNS, ROUND = 20, 300, 10
KEEP = ["dense", "latency-driven", CEILING, "Torch-Pruning global"]


def conv_ms(events: list[dict]) -> list[float]:
    """Median kernel ms of each conv node, in the order the first run ran them."""
    runs = kernel_ms_by_op(events, by_node=True)[WARMUP:]
    first = sorted((e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")),
                   key=lambda e: e["ts"])  # fmt: skip
    order = list(dict.fromkeys(f"{e['args'].get('op_name')}: {e['name'][: -len('_kernel_time')]}" for e in first))
    return [statistics.median(sum(r.get(n, [])) for r in runs) for n in order if "Conv" in n.split(":")[0]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="timm:mobilenetv1_100")
    ap.add_argument("--profile", required=True)
    ap.add_argument("--split", type=int, default=13, help="index of the first layer of the late part")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    target, profile = load_target("cpu-ort"), Profile.load(args.profile)
    models = variants(args.model, target, profile, Budget.parse("macs", "0.5x"), PlanConstraints.max_removed_shared,
                      ceiling=True, peer=True)  # fmt: skip
    shape = model_input_shape(args.model, target)
    model = LatencyModel(profile, args.model, shape[-1])
    dense = collect_layers(models["dense"][0], shape)
    convs = [x for x in dense if x.geometry.op != "linear"]
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    measured, terms = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"m{i}.onnx" for i in range(len(KEEP))]
        for label, path in zip(KEEP, paths):
            export_onnx(models[label][0], torch.randn(*shape), path)
            terms[label] = model.predict_pruned(dense, collect_layers(models[label][0], shape)).per_layer
        for label, events in zip(KEEP, profile_sessions(target, paths, x, WARMUP + RUNS, ROUND)):
            measured[label] = conv_ms(events)
            if len(measured[label]) != len(convs):
                raise SystemExit(f"{label}: {len(measured[label])} conv nodes for {len(convs)} convs: not a chain")
    scale = model.calibration.scale
    parts = {"early": range(args.split), "late": range(args.split, len(convs))}
    rows = {}
    for label in KEEP[1:]:
        rows[label] = {}
        for part, idx in parts.items():
            got = sum(measured["dense"][i] - measured[label][i] for i in idx)
            priced = scale * sum(terms["dense"][convs[i].path] - terms[label][convs[i].path] for i in idx)
            rows[label][part] = {"measured_saving_ms": got, "predicted_saving_ms": priced}
    out = HERE / args.out
    atomic_write_text(out.with_suffix(".json"), json.dumps({"model": args.model, "profile": args.profile,
                      "split": args.split, "layers": [c.path for c in convs], "measured": measured,
                      "terms": terms, "scale": scale, "savings": rows}, indent=1))  # fmt: skip
    lines = [f"{args.model}: conv kernel ms saved against dense, inside the network and as the predictor prices it",
             f"(layers 0-{args.split - 1} early, {args.split}-{len(convs) - 1} late)", "",
             "| plan | early: measured | early: predicted | late: measured | late: predicted |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for label, r in rows.items():
        e, late = r["early"], r["late"]
        lines.append(f"| {label} | {e['measured_saving_ms']:.3f} | {e['predicted_saving_ms']:.3f} | "
                     f"{late['measured_saving_ms']:.3f} | {late['predicted_saving_ms']:.3f} |")  # fmt: skip
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
