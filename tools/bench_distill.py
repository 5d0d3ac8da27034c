"""Fine-tuning a pruned model with and without distillation from its unpruned teacher, same steps and seeds.

    make demo    # makes runs/compress-demo: the OICSR-trained teacher (train/) and the pruned model (prune/step1)
    python tools/bench_distill.py runs/compress-demo/prune/step1 --teacher runs/compress-demo/train \
        --epochs 3 --max-steps 200 --seed 0 --out bench/distill

Methods: ``ce`` (cross-entropy on the labels), ``kd`` (distillation + cross-entropy), ``kd-free`` (distillation
only: the labels are never read). Each fine-tunes the same pruned model with the same TrainConfig and seed;
accuracy is measured on the same test sets (the JPEG CIFAR-10 test set and the lossless 1,017 images).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from edgeprune.atomic import atomic_write_text
from edgeprune.train.distill import DistillConfig
from edgeprune.train.run import eval_run, train_run
from edgeprune.train.trainer import TrainConfig

METHODS = {"ce": None, "kd": True, "kd-free": False}  # distill with labels?


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pruned", help="pruned model folder (or prune run) to fine-tune")
    ap.add_argument("--teacher", required=True, help="the unpruned model: a training run or folder")
    ap.add_argument("--method", action="append", choices=list(METHODS), help="default: all")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--data", default="cifar10")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, seed=args.seed, max_steps_per_epoch=args.max_steps)
    rows = {}
    for method in args.method or list(METHODS):
        labels = METHODS[method]
        distill = None if labels is None else DistillConfig(args.teacher, args.temperature, labels=labels)
        run = out / "runs" / method
        start = time.time()
        result = train_run(args.pruned, run, args.data, "none", {}, cfg, resume=(run / "checkpoint.pt").is_file(),
                           distill=distill)  # fmt: skip
        rows[method] = {
            "test_acc_jpeg": eval_run(str(run), args.data, "test"),
            "test_acc_lossless": eval_run(str(run), "cifar10-lossless", "test"),
            "train_seconds": round(time.time() - start, 1), "last_epoch": result,
        }  # fmt: skip
        print(method, {k: v for k, v in rows[method].items() if k != "last_epoch"}, flush=True)
    before = {"test_acc_jpeg": eval_run(args.pruned, args.data, "test"),
              "test_acc_lossless": eval_run(args.pruned, "cifar10-lossless", "test")}  # fmt: skip
    teacher = {"test_acc_jpeg": eval_run(args.teacher, args.data, "test"),
               "test_acc_lossless": eval_run(args.teacher, "cifar10-lossless", "test")}  # fmt: skip
    record = {"pruned": args.pruned, "teacher": args.teacher, "config": asdict(cfg), "temperature": args.temperature,
              "data": args.data, "before_finetune": before, "teacher_acc": teacher, "methods": rows}  # fmt: skip
    atomic_write_text(out / "distill.json", json.dumps(record, indent=1))
    print(json.dumps({"before": before, "teacher": teacher}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
