"""Accuracy at the same *measured* speedup: edgeprune's regularizers vs Torch-Pruning, same epoch budget.

Every method starts from the pretrained CIFAR ResNet-56 and gets the same training: ``--reg-steps`` steps
of sparsity training (its own regularizer; none for the baseline), then pruning to ``--speedup`` times
the dense model's latency as *measured* on the target, then ``--ft-steps`` steps of fine-tuning. The
pruning strength is found by bisection on measured latency (dense and pruned timed in interleaved
rounds), so every method is compared at the same real speed, not at the same predicted or MACs figure:

- edgeprune methods: the latency-budget planner (cpu-ort profile, widths aligned to the target's channel
  blocking) ranked by each regularizer's importance; the bisection is over the latency budget.
- ``torch_pruning``: Torch-Pruning's GroupNormPruner with its own growing-regularization sparse training,
  global pruning, ``round_to=8``; the bisection is over its pruning ratio.

Resumable per method (``OUT/<method>.json``; checkpoints under ``OUT/runs``). At the end the dense model
and every pruned one are timed together in interleaved rounds, which gives the reported speedups.

    python tools/bench_accuracy.py --out bench/accuracy
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgeprune.atomic import atomic_write_text
from edgeprune.backends import measure_interleaved, prepare_runner
from edgeprune.export import export_onnx
from edgeprune.graph import build_graph
from edgeprune.latency.profile import find_profile
from edgeprune.latency.profiler import prepare_model
from edgeprune.models import create_model
from edgeprune.plan.planner import Budget, BudgetError, PlanConstraints
from edgeprune.plan.run import PruneSettings, prune_run
from edgeprune.prune import load_model_ref
from edgeprune.regularize.base import NoRegularizer
from edgeprune.targets import load_target
from edgeprune.train.data import ArrayLoader, load_dataset, load_lossless_subset
from edgeprune.train.run import train_run
from edgeprune.train.trainer import TrainConfig, Trainer, evaluate
from edgeprune.validation import count_macs

MODEL, SHAPE = "cifar_resnet56", (1, 3, 32, 32)
# Same lambda for OICSR and separated group lasso, as in the OICSR paper's ablation. SSR's lambdas put the
# proximal threshold near the 10th percentile of the pretrained filter norms (about 0.6; median 1.13).
# streams=False: the planner keeps residual streams whole by default, so (as compress does) the regularizers
# leave them alone; --streams penalizes and lets the planner cut them (the behaviour before that default).
METHODS = {
    "oicsr": ("oicsr", {"lam": 0.02, "streams": False}),
    "group_lasso": ("group_lasso", {"lam": 0.02, "streams": False}),
    "ssr_l21": ("ssr_l21", {"lam": 0.006, "rho": 0.01, "every": 10, "streams": False}),
    "ssr_l20": ("ssr_l20", {"lam": 0.002, "rho": 0.01, "every": 10, "streams": False}),
    "none": ("none", {}),
    "torch_pruning": ("torch_pruning", {"reg": 5e-4}),
}


class Timer:
    """Measured speedup of a model over the dense one: both timed in interleaved rounds."""

    def __init__(self, target, dense: torch.nn.Module, rounds: int) -> None:
        self.target, self.rounds, self.tmp = target, rounds, tempfile.TemporaryDirectory()
        self.x = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
        self.dense = self.runner(dense, "dense")

    def runner(self, model: torch.nn.Module, label: str):
        path = Path(self.tmp.name) / f"{label}.onnx"
        return prepare_model(self.target, model.eval(), SHAPE, path)

    def times(self, runners: dict) -> dict[str, float]:
        """Median ms of each runner: ``rounds`` times the target's rounds, alternating between runners."""
        target = replace(self.target, rounds=self.target.rounds * self.rounds)
        return {k: s.median_ms for k, s in measure_interleaved(runners, self.x, target).items()}

    def speedup(self, model: torch.nn.Module) -> float:
        ms = self.times({"dense": self.dense, "pruned": self.runner(model, "probe")})
        return ms["dense"] / ms["pruned"]


def bisect(make, lo: float, hi: float, goal: float, timer: Timer, iters: int, log: list, rising: bool = False):
    """The knob in [lo, hi] whose pruned model runs ``goal`` times faster, and that model.

    ``rising``: the speedup grows with the knob (a pruning ratio); else it falls (a latency budget).
    """
    best = None
    for _ in range(iters):
        knob = (lo + hi) / 2
        try:
            model = make(knob)
        except BudgetError:  # below the reachable minimum: relax
            lo = knob
            continue
        s = timer.speedup(model)
        log.append({"knob": round(knob, 4), "measured_speedup": round(s, 3)})
        print(f"    knob {knob:.4f}: measured {s:.2f}x", flush=True)
        if best is None or abs(s - goal) < abs(best[2] - goal):
            best = (knob, model, s)
        lo, hi = (knob, hi) if (s > goal) != rising else (lo, knob)
    if best is None:
        raise RuntimeError("no pruned model could be built in the bisection range")
    return best[0], best[1]


def fit(model: torch.nn.Module, steps: int, out: Path, hook=None, seed: int = 0) -> None:
    """Plain training of an in-memory model (Torch-Pruning's path): same loop and data as edgeprune's."""
    train, test = load_dataset("cifar10")
    cfg = ft_config(steps, seed)
    graph = build_graph(model, torch.randn(*SHAPE))
    trainer = Trainer(
        model, NoRegularizer(model, graph), ArrayLoader(train, cfg.batch_size, True, seed), None, cfg, out, False
    )
    if hook is not None:  # runs after backward, before the optimizer step: where TP adds its gradient term
        trainer.opt.register_step_pre_hook(lambda *_: hook())
    trainer.fit()


def accuracy(model: torch.nn.Module) -> dict:
    _, test = load_dataset("cifar10")
    x, y = load_lossless_subset()
    with torch.no_grad():
        lossless = float((model.eval()(x).argmax(1) == y).float().mean())
    return {"jpeg_test": evaluate(model, ArrayLoader(test, 256, False), torch.device("cpu")), "lossless": lossless}


def ft_config(steps: int, seed: int = 0) -> TrainConfig:
    """``steps`` steps of batch 128 at lr 0.01 (cosine), in epochs of at most 300 steps; ``seed`` orders the
    batches and draws the augmentation."""
    return TrainConfig(epochs=-(-steps // 300), lr=0.01, max_steps_per_epoch=min(steps, 300), seed=seed)


def run_edgeprune(method: str, args, target, timer: Timer, out: Path) -> tuple[dict, torch.nn.Module]:
    reg, kwargs = METHODS[method]
    kwargs = {**kwargs, "streams": args.streams} if "streams" in kwargs else kwargs
    # --streams: a stream may lose as much as any other group (the planner's cap before streams had their own)
    shared = PlanConstraints.max_removed if args.streams else PlanConstraints.max_removed_shared
    constraints = PlanConstraints(max_removed_shared=shared)
    train_dir = out / "train"
    reused = Path(args.train_from or "-") / method / "train"
    if (reused / "run.json").is_file():  # the same sparsity training, pruned to another speed
        run = json.loads((reused / "run.json").read_text())
        trained, seed = run.get("reg_kwargs", {}), run.get("config", {}).get("seed", 0)
        if {"streams": True, **trained} != {"streams": True, **kwargs} or seed != args.seed:
            raise SystemExit(f"{reused} was trained with {trained}, seed {seed}, not {kwargs}, seed {args.seed}: "
                             "drop --train-from or match it")
        train_dir = reused
    if not (train_dir / "run.json").is_file():
        cfg = ft_config(args.reg_steps, args.seed)
        train_run(MODEL, train_dir, "cifar10", reg, kwargs, cfg, True, False, None, False)
    log: list = []
    out.mkdir(parents=True, exist_ok=True)
    probes = Path(tempfile.mkdtemp(dir=out))

    def make(fraction: float):
        folder = probes / f"{fraction:.4f}"
        budget = Budget.parse("latency", f"{fraction:.4f}x")
        prune_run(str(train_dir), target.name, PruneSettings(budget, constraints=constraints), folder)
        return load_model_ref(str(folder))[0]

    fraction, _ = bisect(make, 0.2, 0.8, args.speedup, timer, args.iters, log)
    pruned_dir, ft_dir = out / "pruned", out / "finetune"
    shutil.rmtree(pruned_dir, ignore_errors=True)
    shutil.rmtree(ft_dir, ignore_errors=True)  # a fine-tune interrupted earlier started from another plan
    (probes / f"{fraction:.4f}").rename(pruned_dir)
    shutil.rmtree(probes)
    cfg = ft_config(args.ft_steps, args.seed)
    train_run(str(pruned_dir), ft_dir, "cifar10", "none", {}, cfg, False, False, None, False)
    model = load_model_ref(str(ft_dir))[0]
    return {"regularizer": reg, "kwargs": kwargs, "knob": "latency budget", "value": fraction, "bisection": log,
            "constraints": vars(constraints)}, model  # fmt: skip


def run_torch_pruning(args, timer: Timer, out: Path) -> tuple[dict, torch.nn.Module]:
    import torch_pruning as tp

    reg = METHODS["torch_pruning"][1]["reg"]
    model = create_model(MODEL, pretrained=True)

    def pruner(m: torch.nn.Module, ratio: float):
        # Torch-Pruning cannot follow the zero-padded (option A) shortcut: left free, it cuts the residual
        # streams apart. So it gets what it can prune soundly here, the inner channel of every block.
        streams = [m.linear, m.conv1] + [mod for name, mod in m.named_modules() if name.endswith("conv2")]
        imp = tp.importance.GroupMagnitudeImportance(p=2)
        return tp.pruner.GroupNormPruner(m, torch.randn(*SHAPE), importance=imp, reg=reg, pruning_ratio=ratio,
                                         global_pruning=True, round_to=8, max_pruning_ratio=0.75,
                                         ignored_layers=streams)  # fmt: skip

    sparse = pruner(model, 0.5)
    if hasattr(sparse, "update_regularizer"):
        sparse.update_regularizer()
    fit(model, args.reg_steps, out / "train", hook=lambda: sparse.regularize(model), seed=args.seed)
    log: list = []

    def make(ratio: float):
        m = copy.deepcopy(model).eval()
        pruner(m, ratio).step()
        return m

    # Above a ratio of about 0.7 Torch-Pruning skips layers it would empty and prunes less: stay below.
    ratio, pruned = bisect(make, 0.1, 0.7, args.speedup, timer, args.iters, log, rising=True)
    fit(pruned, args.ft_steps, out / "finetune", seed=args.seed)
    note = "inner channels of each block only: Torch-Pruning cannot follow the zero-padded shortcut"
    return {"regularizer": "GroupNormPruner growing reg", "kwargs": {"reg": reg}, "knob": "pruning ratio",
            "value": ratio, "bisection": log, "note": note}, pruned  # fmt: skip


def markdown(rows: list[dict], baseline: dict) -> str:
    base = baseline["jpeg_test"]
    lines = [f"| method | measured speedup | MACs speedup | JPEG test | vs baseline ({base:.2%}) | lossless test |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        acc = r["accuracy"]
        delta = 100 * (acc["jpeg_test"] - base)
        lines.append(f"| {r['method']} | {r['measured_speedup']:.2f}x | {r['macs_speedup']:.2f}x | "
                     f"{acc['jpeg_test']:.2%} | {delta:+.2f} pts | {acc['lossless']:.2%} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="cpu-ort")
    ap.add_argument("--speedup", type=float, default=2.0, help="measured speedup every method is pruned to")
    ap.add_argument("--reg-steps", type=int, default=300, help="sparsity-training steps (batch 128)")
    ap.add_argument("--ft-steps", type=int, default=600, help="fine-tuning steps after pruning (batch 128)")
    ap.add_argument("--iters", type=int, default=6, help="bisection steps on measured latency")
    ap.add_argument("--rounds", type=int, default=3, help="timing per step, times the target's rounds")
    ap.add_argument("--train-from", help="reuse DIR/<method>/train sparsity runs (edgeprune methods)")
    ap.add_argument("--streams", action="store_true",
                    help="regularize residual streams and let the planner cut them (max_removed_shared 0.75)")
    ap.add_argument("--method", action="append", choices=list(METHODS), help="repeatable; default: all")
    ap.add_argument("--seed", type=int, default=0, help="training and fine-tuning seed (batch order, augmentation)")
    ap.add_argument("--out", default="bench/accuracy")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(args.seed)
    target, out = load_target(args.target), Path(args.out)
    dense = create_model(MODEL, pretrained=True).eval()
    timer = Timer(target, dense, args.rounds)
    onnx = {}
    for method in args.method or list(METHODS):
        done, work = out / f"{method}.json", out / "runs" / method
        if not done.is_file():
            print(f"== {method}", flush=True)
            t0 = time.time()
            if method == "torch_pruning":
                record, model = run_torch_pruning(args, timer, work)
            else:
                record, model = run_edgeprune(method, args, target, timer, work)
            export_onnx(model.eval(), torch.randn(*SHAPE), work / "model.onnx")
            record.update(method=method, accuracy=accuracy(model), minutes=round((time.time() - t0) / 60, 1),
                          macs=count_macs(model, torch.randn(*SHAPE))[0])  # fmt: skip
            atomic_write_text(done, json.dumps(record, indent=1))
        print(f"   {method}: {json.loads(done.read_text())['accuracy']}", flush=True)
        onnx[method] = work / "model.onnx"
    runners = {"dense": timer.dense}
    runners.update({k: prepare_runner(target, p, SHAPE) for k, p in onnx.items()})
    timer.rounds = args.rounds + 2
    ms = timer.times(runners)
    dense_macs = count_macs(dense, torch.randn(*SHAPE))[0]
    rows = []
    for method in onnx:
        record = json.loads((out / f"{method}.json").read_text())
        rows.append({**record, "measured_speedup": ms["dense"] / ms[method], "ms": ms[method],
                     "macs_speedup": dense_macs / record["macs"]})  # fmt: skip
    baseline = json.loads(Path("bench/baseline-r56-jpeg.json").read_text())["after_2_epochs"]
    baseline = {"jpeg_test": baseline["jpeg_test_top1"], "lossless": baseline["lossless_1017_top1"]}
    profile = str(find_profile(target.name, target.backend))  # what the edgeprune methods were planned with
    summary = {"model": MODEL, "target": args.target, "profile": profile, "settings": vars(args),
               "dense_ms": ms["dense"], "baseline": baseline, "rows": rows}  # fmt: skip
    atomic_write_text(out / "accuracy.json", json.dumps(summary, indent=1))
    atomic_write_text(out / "accuracy.md", markdown(rows, baseline) + "\n")
    print(markdown(rows, baseline))


if __name__ == "__main__":
    main()
