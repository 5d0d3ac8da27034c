"""One training loop for regularized training and fine-tuning: resumable, deterministic on CPU, DDP-ready.

Every source of randomness is a function of (seed, epoch) or is checkpointed, so a run interrupted and
resumed ends with bit-identical weights (on CPU). Checkpoints are written atomically at every epoch end
and on SIGINT (mid-epoch, with the position in the epoch).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from edgeprune.atomic import atomic_path
from edgeprune.errors import EdgepruneError, InputError
from edgeprune.graph import tree_tensors
from edgeprune.regularize.base import Regularizer
from edgeprune.regularize.hook import SparsityHook
from edgeprune.train.data import epoch_batches
from edgeprune.train.distill import Distiller

CHECKPOINT = "checkpoint.pt"


class TrainingDiverged(EdgepruneError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd" (nesterov) | "adamw"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "cosine" | "step" (x0.1 at 50 % and 75 %)
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0
    amp: bool = True  # CUDA only
    channels_last: bool = True  # CUDA only
    max_steps_per_epoch: int | None = None  # cap for quick runs and tests


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                               weight_decay=cfg.weight_decay)  # fmt: skip
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise InputError(f"unknown optimizer {cfg.optimizer!r} (sgd or adamw)")


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier at global ``step``: linear warm-up, then cosine or step decay."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "step":
        return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
    raise InputError(f"unknown schedule {schedule!r} (cosine or step)")


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def atomic_torch_save(obj: dict, path: Path) -> None:
    """A crash while saving never leaves half a checkpoint (temp file, fsync, rename)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device) -> float:
    """Top-1 accuracy over the whole split (any loader of (x, y) batches, see ``epoch_batches``)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in epoch_batches(loader, 0):
        pred = model(x.to(device)).argmax(1).cpu()
        correct += int((pred == y).sum())
        total += len(y)
    model.train(was_training)
    return correct / max(total, 1)


class Trainer:
    """Trains ``model`` with an optional regularizer, logging to ``out/metrics.jsonl``. ``train`` and ``test``
    are any loaders of (x, y) batches with ``len()``: ArrayLoader, FolderLoader, a DataLoader."""

    def __init__(self, model: nn.Module, regularizer: SparsityHook | Regularizer, train: Iterable,
                 test: Iterable | None, cfg: TrainConfig, out_dir: str | os.PathLike, progress: bool = True,
                 distiller: Distiller | None = None) -> None:  # fmt: skip
        self.cfg, self.out = cfg, Path(out_dir)
        self.rank, self.world = _distributed()
        cuda = torch.cuda.is_available()
        self.device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
        self.cuda = self.device.type == "cuda"
        self.model = model.to(self.device)
        if self.cuda and cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else self.model
        self.train_data, self.test_data = train, test
        # every regularizer call goes through the hook, as in a loop of the user's own
        self.hook = regularizer if isinstance(regularizer, SparsityHook) else SparsityHook.wrap(model, regularizer)
        self.distiller = distiller.to(self.device) if distiller else None
        self.opt = make_optimizer(self.model, cfg)
        self.steps_per_epoch = min(len(train), cfg.max_steps_per_epoch or 10**12)
        total, warmup = cfg.epochs * self.steps_per_epoch, int(cfg.warmup_epochs * self.steps_per_epoch)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, total, warmup, cfg.schedule))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.cuda and cfg.amp)
        self.epoch = self.step_in_epoch = self.global_step = 0
        self.progress = progress and self.rank == 0
        self._stop = False
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)

    # -- checkpoints
    def state(self) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(),
            "regularizer": self.hook.state_dict(), "config": asdict(self.cfg), "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
            "torch_rng": torch.get_rng_state(),
        }  # fmt: skip

    def save(self) -> None:
        if self.rank == 0:
            atomic_torch_save(self.state(), self.out / CHECKPOINT)

    def resume(self) -> bool:
        """Load ``out/checkpoint.pt`` if present (tensors only: weights_only); True when resumed."""
        path = self.out / CHECKPOINT
        if not path.is_file():
            return False
        ckpt = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.hook.load_state_dict(ckpt["regularizer"])
        self.epoch, self.step_in_epoch, self.global_step = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]
        torch.set_rng_state(ckpt["torch_rng"].cpu())
        return True

    # -- loop
    def _log(self, record: dict) -> None:
        if self.rank == 0:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def fit(self) -> dict:
        """Train to ``cfg.epochs``; returns the last epoch's metrics (or status "interrupted")."""
        previous = signal.signal(signal.SIGINT, self._on_sigint) if self.rank == 0 else None
        try:
            result: dict = {}
            while self.epoch < self.cfg.epochs:
                result = self._run_epoch()
                if self._stop:
                    self.save()
                    return {"status": "interrupted", "epoch": self.epoch, "step_in_epoch": self.step_in_epoch}
            return {"status": "done", **result}
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _on_sigint(self, signum, frame) -> None:
        self._stop = True  # finish the current step, checkpoint, return

    def _run_epoch(self) -> dict:
        self.net.train()
        seen = correct = 0
        loss_sum, start = 0.0, time.perf_counter()
        batches = epoch_batches(self.train_data, self.epoch, self.step_in_epoch)
        bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, disable=not self.progress,
                   desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}")  # fmt: skip
        for x, y in batches:
            if self.step_in_epoch >= self.steps_per_epoch:
                break
            loss, hits = self._step(x, y)
            seen, correct, loss_sum = seen + len(y), correct + hits, loss_sum + loss * len(y)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                            img_s=f"{seen * self.world / (time.perf_counter() - start):.0f}")  # fmt: skip
            if self._stop:
                bar.close()
                return {}
        bar.close()
        record = {"epoch": self.epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
                  "images_per_s": seen * self.world / (time.perf_counter() - start), "lr": self.sched.get_last_lr()[0]}
        if self.world > 1:
            record["ranks_consistent"] = self._check_ranks()
        if self.test_data is not None and self.rank == 0:
            record["test_acc"] = evaluate(self.model, self.test_data, self.device)
        self._log(record)
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.save()
        return record

    def _check_ranks(self) -> bool:
        """All ranks must hold the same weights and regularizer state (AULM F/Y); raise if not.

        BN running statistics are left out: each rank's last forward updates its own copy (DDP re-broadcasts
        rank 0's at the next forward), so only rank 0's are ever used.
        """
        tensors = [*(p.detach() for p in self.model.parameters()), *tree_tensors(self.hook.state_dict())]
        checksum = torch.tensor([float(sum(t.double().sum() for t in tensors if t.is_floating_point()))],
                                dtype=torch.float64, device=self.device)  # fmt: skip
        gathered = [torch.zeros_like(checksum) for _ in range(self.world)]
        dist.all_gather(gathered, checksum)
        if any(not torch.equal(g, gathered[0]) for g in gathered):
            raise RuntimeError(f"ranks disagree on weights/regularizer state: {[float(g) for g in gathered]}")
        return True

    def _diverged(self, value: float) -> None:
        raise TrainingDiverged(
            f"loss is {value} at epoch {self.epoch + 1}, step {self.step_in_epoch + 1}: lower the learning rate "
            f"or the regularization strength; the last good checkpoint is {self.out / CHECKPOINT}"
        )

    def _task_loss(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss before regularization, and what accuracy is counted against (label-free: the teacher)."""
        if self.distiller is None:
            return F.cross_entropy(out, y, label_smoothing=self.cfg.label_smoothing), y
        return self.distiller.loss(out, x, y)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.cuda and self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.cuda and self.cfg.amp):
            out = self.net(x)
            task, y = self._task_loss(out, x, y)
        if not torch.isfinite(task):
            self._diverged(float(task))
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(task).backward()
        self.scaler.unscale_(self.opt)  # the penalty's gradient is added unscaled (a no-op without AMP)
        penalty = self.hook.after_backward()
        if not torch.isfinite(penalty):
            self._diverged(float(penalty))
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.hook.after_step()
        self.global_step += 1
        self.step_in_epoch += 1
        return float(task.detach()), int((out.argmax(1) == y).sum())
