"""edgeprune's plans of an Ultralytics detector against Torch-Pruning's at the same MACs (the ``bench`` extra):
box mAP50-95 on a dataset yaml's val split before any fine-tuning, and latency on a target, every model timed in
one interleaved run. Torch-Pruning prunes the detector as its users do (tools/peer_plans.py: C2f blocks split,
magnitude importance, uniform and global, widths rounded to 8, its ratio scanned to the MACs).

    python bench/yolo/peer/compare.py --model ultralytics:yolov8n.yaml --data runs/yolo/coco256.yaml \\
        --plan "edgeprune default=runs/yolo-peer/default/model" --out bench/yolo/peer/yolov8n-0.5x

Writes OUT.json and OUT.md; prints the table.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from importlib.metadata import version
from pathlib import Path

import torch

from edgeprune.atomic import atomic_write_text
from edgeprune.latency.profiler import model_input_shape
from edgeprune.models import create_model
from edgeprune.prune import load_pruned
from edgeprune.targets import load_target
from edgeprune.train.detect import detection_metrics
from edgeprune.validation import count_macs

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
from bench_planner import measure, paired  # noqa: E402  (the planner benchmark's timing and paired ratio)
from peer_plans import torch_pruning_plans  # noqa: E402

PEER_SIDE = 320  # Torch-Pruning's plan does not depend on the input size, nor does a conv net's MACs fraction


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the dense detector (its pretrained weights are used)")
    ap.add_argument("--data", required=True, help="dataset yaml: mAP on its val split")
    ap.add_argument("--plan", action="append", default=[], metavar="LABEL=FOLDER", help="an edgeprune pruned model")
    ap.add_argument("--macs", type=float, default=0.5, help="Torch-Pruning's MACs fraction")
    ap.add_argument("--target", default="cpu-ort")
    ap.add_argument("--rounds", type=int, default=3, help="times the target's rounds")
    ap.add_argument("--peer-memory-gb", type=float, default=8.0, help="address-space cap while Torch-Pruning runs")
    ap.add_argument("--out", required=True, help="output prefix (.json and .md are written)")
    args = ap.parse_args()

    dense = create_model(args.model, pretrained=True).eval()
    models = {"dense": dense}
    for spec in args.plan:
        label, _, folder = spec.partition("=")
        models[label] = load_pruned(folder).eval()
    failed: dict[str, str] = {}
    # Torch-Pruning's grouping can grow without bound (YOLO11n: 0.5 GB every 12 s); a cap on the address space
    # turns that into an error it records, where the kernel would kill the run
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (int(args.peer_memory_gb * 2**30), hard))
    try:
        models.update(torch_pruning_plans(dense, args.model, (1, 3, PEER_SIDE, PEER_SIDE), args.macs, failed))
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

    target = load_target(args.target)
    shape = model_input_shape(args.model, target)  # the registry's size (640 for a YOLO), as bench_planner times
    x = torch.randn(*shape)
    base = count_macs(dense, x)[0]
    rows = {k: {"macs": count_macs(m, x)[0] / base} for k, m in models.items()}
    for label, m in models.items():
        rows[label]["mAP50-95"] = detection_metrics(m, args.data, imgsz=shape[-1])["mAP50-95"]
        print(f"{label}: MACs {rows[label]['macs']:.3f}x, mAP50-95 {rows[label]['mAP50-95']:.4f}", flush=True)

    median_ms, per_round = measure(args.model, target, {k: (m, None) for k, m in models.items()}, args.rounds)
    for label in models:
        rows[label]["ms"] = median_ms[label]
        rows[label]["speedup"] = paired(per_round, "dense", label) if label != "dense" else None
    peers = [k for k in models if k.startswith("Torch-Pruning")]
    faster_peer = min(peers, key=median_ms.get) if peers else None
    for label in models:
        if faster_peer and label not in peers and label != "dense":
            rows[label]["vs_peer"] = paired(per_round, faster_peer, label)

    result = {"model": args.model, "data": args.data, "target": args.target, "input_size": shape[-1],
              "macs_fraction": args.macs, "rounds": target.rounds * args.rounds,
              "torch_pruning": version("torch-pruning"), "peer_memory_gb": args.peer_memory_gb,
              "peer_failed": failed, "faster_peer": faster_peer,
              "rows": rows}  # fmt: skip
    lines = ["| plan | MACs | mAP50-95 | ms | speedup over dense | over Torch-Pruning's faster plan |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip

    def ci(v):
        return f"{v[0]:.2f}× ({v[1]:.2f}–{v[2]:.2f})" if v else ""

    for label, r in rows.items():
        lines.append(f"| {label} | {r['macs']:.3f}x | {100 * r['mAP50-95']:.1f} | {r['ms']:.2f} | {ci(r['speedup'])} "
                     f"| {ci(r.get('vs_peer'))} |")  # fmt: skip
    lines += [f"\n{k}: failed: {v}" for k, v in failed.items()]
    table = "\n".join(lines) + "\n"
    atomic_write_text(Path(args.out + ".json"), json.dumps(result, indent=1) + "\n")
    atomic_write_text(Path(args.out + ".md"), table)
    print(table)


if __name__ == "__main__":
    main()
