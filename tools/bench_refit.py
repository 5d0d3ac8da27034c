"""Ablation for the refit (edgeprune.prune.reconstruct): one plan applied three ways, each saved as a pruned
model folder for `edgeprune eval`: removed channels dropped (``zeroed/``), their calibration means folded into
the next layers (``means/``), and means folded then the next layers refitted (``refit/``, what
`prune --calibration-data` writes). The calibration images are the same for the last two.

    python tools/bench_refit.py cifar_resnet56 --pretrained --plan runs/r56/plan.json --calibration-data cifar10 \
        --out runs/refit-r56
    for v in zeroed means refit; do edgeprune eval runs/refit-r56/$v --data cifar10-lossless --json; done
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--pretrained", action="store_true")
    ap.add_argument("--plan", required=True)
    ap.add_argument("--calibration-data", required=True)
    ap.add_argument("--calibration-count", type=int, default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from dataclasses import asdict

    from edgeprune.graph import build_graph
    from edgeprune.prune import Plan, input_chw, load_model_ref, measure_channels, prune_model, save_pruned
    from edgeprune.prune.reconstruct import refit_layers
    from edgeprune.train.calibration import calibration_loader

    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists: choose another --out")
    model, name, kwargs, changes = load_model_ref(args.model, args.pretrained)
    model.eval()
    chw = input_chw(args.model, name, kwargs, None)
    graph = build_graph(model, torch.randn(1, *chw), model_name=name, model_kwargs=kwargs)
    plan = Plan.load(args.plan)
    images = torch.as_tensor(calibration_loader(args.calibration_data, args.calibration_count)(model, name, chw[-1]))
    means = measure_channels(model, graph, images).means
    fits = []
    for variant in ("zeroed", "means", "refit"):
        pruned, spec = prune_model(model, graph, plan, changes, chw, None if variant == "zeroed" else means)
        if variant == "refit":
            fits = [asdict(f) for f in refit_layers(model, pruned, graph, plan, images)]
        save_pruned(pruned, spec, out / variant)
    (out / "refit.json").write_text(json.dumps({"model": args.model, "plan": args.plan, "images": len(images),
                                                "refit": fits}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
