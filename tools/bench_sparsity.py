"""Sparsity each regularizer induces from the same start, with the same step budget (CIFAR-10 JPEG).

    python tools/bench_sparsity.py --model cifar_resnet20 --steps 150 --out bench/sparsity

For every regularizer: fine-tune the pretrained model, then measure the out-in group energy of every
prunable channel (normalized by its group's mean), the fraction of channels below 1 % of their group's
mean, SSR's exactly-zero F rows, and top-1 on the JPEG test set. Writes sparsity.json and a histogram PNG.

``--from-runs DIR`` reuses training runs made elsewhere with the same step budget (``DIR/<label>/train``,
as tools/bench_accuracy.py writes them; their lambda is read from their run.json); the rest are trained.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from edgeprune.graph import build_graph
from edgeprune.prune import load_model_ref
from edgeprune.regularize import NoRegularizer
from edgeprune.train.data import ArrayLoader, load_dataset
from edgeprune.train.run import train_run
from edgeprune.train.trainer import TrainConfig, evaluate

RUNS = {  # name -> (regularizer, kwargs): OICSR and separated group lasso share lambda, as in the paper
    "none": ("none", {}),
    "oicsr": ("oicsr", {"lam": 2e-3}),
    "group_lasso": ("group_lasso", {"lam": 2e-3}),
    "slimming": ("slimming", {"lam": 1e-3}),
    "ssr_l21": ("ssr_l21", {"lam": 2e-3, "rho": 1e-2, "every": 10}),
    "ssr_l20": ("ssr_l20", {"lam": 2e-3, "rho": 1e-2, "every": 10}),
}


def group_energies(model: torch.nn.Module, name: str) -> np.ndarray:
    """Out-in energy of every prunable channel divided by its group's mean energy."""
    graph = build_graph(model, torch.randn(1, 3, 32, 32), model_name=name)
    out = []
    with torch.no_grad():
        for s in NoRegularizer(model, graph).slices:
            e = s.unit_energy().cpu().numpy()[s.trainable.numpy()]
            if len(e) and e.mean() > 0:
                out.append(e / e.mean())
    return np.concatenate(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cifar_resnet20")
    ap.add_argument("--steps", type=int, default=150, help="training steps per run (batch 128)")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--out", default="bench/sparsity")
    ap.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS), help="which regularizers")
    ap.add_argument("--lam-scale", type=float, default=1.0, help="multiply every lam (short budgets need more)")
    ap.add_argument("--from-runs", help="reuse DIR/<label>/train runs where they exist")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _, test = load_dataset("cifar10")
    test_loader = ArrayLoader(test, 256, False)
    results = {}
    for label in args.runs:
        reg, kwargs = RUNS[label]
        kwargs = {k: v * args.lam_scale if k == "lam" else v for k, v in kwargs.items()}
        run_dir = out / "runs" / label
        reused = Path(args.from_runs or "-") / label / "train"
        if (reused / "run.json").is_file():
            run = json.loads((reused / "run.json").read_text())
            steps = run["config"]["epochs"] * run["config"]["max_steps_per_epoch"]
            if run["model"] != args.model or steps != args.steps:
                raise SystemExit(f"{reused}: {run['model']}, {steps} steps, not {args.model}, {args.steps} steps")
            run_dir, kwargs = reused, run["reg_kwargs"]
        cfg = TrainConfig(epochs=1, batch_size=128, lr=args.lr, max_steps_per_epoch=args.steps)
        if not (run_dir / "model" / "arch.json").exists():
            train_run(args.model, run_dir, "cifar10", reg, kwargs, cfg, pretrained=True, progress=False)
        model, *_ = load_model_ref(str(run_dir))
        energy = group_energies(model, args.model)
        importance = json.loads((run_dir / "importance.json").read_text())["groups"]
        zero_rows = None
        if reg.startswith("ssr"):  # SSR's importance is ||F||: exactly zero means the prox removed the channel
            zero_rows = sum(int(v == 0.0) for scores in importance.values() for v in scores)
        results[label] = {
            "regularizer": reg, "kwargs": kwargs, "test_acc_jpeg": evaluate(model, test_loader, torch.device("cpu")),
            "below_1pct_of_group_mean": float((energy < 0.01).mean()), "channels": int(len(energy)),
            "energy_quantiles": {q: float(np.quantile(energy, q)) for q in (0.05, 0.25, 0.5)},
            "ssr_zero_rows": zero_rows, "run": str(run_dir),
        }  # fmt: skip
        np.save(out / f"energy-{label}.npy", energy)
        print(label, json.dumps(results[label]), flush=True)
    meta = {"model": args.model, "steps": args.steps, "batch": 128, "lr": args.lr, "lam_scale": args.lam_scale,
            "data": "CIFAR-10 JPEG train",
            "start": "pretrained checkpoint", "energy": "out-in group energy / group mean"}
    (out / "sparsity.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    plot(out)
    return 0


def plot(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.logspace(-4, 1, 60)
    for label in RUNS:
        path = out / f"energy-{label}.npy"
        if path.exists():
            ax.hist(np.clip(np.load(path), 1e-4, 10), bins=bins, histtype="step", label=label)
    ax.set_xscale("log")
    ax.axvline(0.01, color="k", lw=0.6, ls="--")
    ax.set_xlabel("channel out-in energy / group mean (dashed: 1 %)")
    ax.set_ylabel("channels")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "energy-histogram.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
