"""The width power at one latency budget: pretrained CIFAR ResNet-56 planned to the same predicted latency
with each power (weight energy, latency-ranked on the blocking, as ``prune --pretrained --latency B`` plans
without data), timed together in one interleaved run, then fine-tuned alike and scored on the 10,000 CIFAR-10
JPEG test images. At a MACs budget a higher power bought speed with accuracy; at a latency budget every plan
is meant to run alike, so what is left to compare is the accuracy, and how closely each meets the budget.

    python bench/planner-peer/normalization/equal_latency.py \
        --profile bench/predictor/planned-calibration/profile-cpu-ort.json --latency 0.7x --ft-steps 600 \
        --out equal-latency-r56

Writes NAME.json and NAME.md beside this script. Needs the CIFAR-10 data (``EDGEPRUNE_DATA``).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[2] / "tools"))
sys.path.insert(0, str(HERE))
from accuracy import accuracy, cifar_images, plan_powers, pretrained_resnet56, score  # noqa: E402
from bench_planner import measure, paired  # noqa: E402

from edgeprune.atomic import atomic_write_text  # noqa: E402
from edgeprune.latency import Profile  # noqa: E402
from edgeprune.plan.planner import Budget  # noqa: E402
from edgeprune.prune import prune_model  # noqa: E402
from edgeprune.targets import load_target  # noqa: E402

POWERS = {"0 (default)": 0.0, "0.5": 0.5, "1": 1.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--latency", default="0.7x", help="predicted latency budget, of dense")
    ap.add_argument("--rounds", type=int, default=3, help="timing, times the target's rounds")
    ap.add_argument("--norm-images", type=int, default=2048, help="train images the norms are re-estimated on")
    ap.add_argument("--ft-steps", type=int, default=600)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    x_test, y_test, x_norm = cifar_images(args.norm_images)
    target, profile = load_target("cpu-ort"), Profile.load(args.profile)
    budget = Budget.parse("latency", args.latency)
    model, graph, layers = pretrained_resnet56()
    powers = ",".join(str(p) for p in POWERS.values())
    results = plan_powers(model, graph, layers, budget, profile, target, powers, POWERS, 32)
    models = {"dense": (model, None)}
    models.update({k: (prune_model(model, graph, r.plan)[0].eval(), r) for k, r in results.items()})
    ms, rounds = measure("cifar_resnet56", target, models, args.rounds)
    rows = {"dense": {"top1": accuracy(model, x_test, y_test), "ms": ms["dense"]}}
    for label, result in results.items():
        rows[label] = {"measured_speedup": paired(rounds, "dense", label),
                       "predicted_speedup": result.dense["latency"] / result.pruned["latency"],
                       "macs_ratio": result.pruned["macs"] / result.dense["macs"], "ms": ms[label],
                       **score(models[label][0], x_test, y_test, x_norm, args.ft_steps),
                       "widths": {str(w.group): [w.kept, w.size] for w in result.widths if w.kept < w.size},
                       }  # fmt: skip
    out = HERE / args.out
    atomic_write_text(out.with_suffix(".json"), json.dumps({"profile": args.profile, "latency": args.latency,
                      "ft_steps": args.ft_steps, "rows": rows}, indent=1))  # fmt: skip
    lines = [f"cifar_resnet56 (pretrained) at {args.latency} predicted latency; CIFAR-10 JPEG test top-1 % "
             f"(dense {rows['dense']['top1']:.2f})", "",
             "| width power | MACs | predicted speedup | measured speedup | as shrunk | norms re-estimated | "
             f"after {args.ft_steps} fine-tuning steps |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for label in POWERS:
        r, s = rows[label], rows[label]["measured_speedup"]
        lines.append(f"| {label} | {r['macs_ratio']:.3f}x | {r['predicted_speedup']:.2f}x | {s[0]:.2f}x "
                     f"({s[1]:.2f}–{s[2]:.2f}) | {r['top1_shrunk']:.2f} | {r['top1_norms_reestimated']:.2f} | "
                     f"{r['top1_finetuned']:.2f} |")  # fmt: skip
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
