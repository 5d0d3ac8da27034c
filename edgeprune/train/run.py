"""Train / fine-tune / evaluate from names: what the CLI calls (and a pipeline can call directly)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist

from edgeprune.atomic import atomic_write_text
from edgeprune.errors import EdgepruneError
from edgeprune.graph import build_graph
from edgeprune.models import get_entry
from edgeprune.prune import arch_spec, load_model_ref, save_pruned
from edgeprune.regularize import create_regularizer
from edgeprune.train.data import ArrayLoader, load_dataset
from edgeprune.train.distill import DistillConfig, Distiller
from edgeprune.train.trainer import CHECKPOINT, TrainConfig, Trainer, evaluate

RUN_FILE = "run.json"


class RunError(EdgepruneError, RuntimeError):
    """A run that cannot start (existing run without --resume, bad model reference...)."""


def _init_distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def train_run(
    model_ref: str,
    out_dir: str | os.PathLike,
    data: str = "cifar10",
    reg: str = "oicsr",
    reg_kwargs: dict | None = None,
    cfg: TrainConfig | None = None,
    pretrained: bool = False,
    resume: bool = False,
    data_dir: str | None = None,
    progress: bool = True,
    distill: DistillConfig | None = None,
) -> dict:
    """Train ``model_ref`` with regularizer ``reg`` (and, with ``distill``, learning from a teacher); writes
    checkpoint, metrics, model/, importance.json."""
    cfg = cfg or TrainConfig()
    out = Path(out_dir)
    if (out / CHECKPOINT).exists() and not resume:
        raise RunError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    rank, world = _init_distributed()
    torch.manual_seed(cfg.seed)
    model, name, kwargs, changes = load_model_ref(model_ref, pretrained)
    c, h, w = get_entry(name).input_size
    graph = build_graph(model, torch.randn(1, c, h, w), model_name=name, model_kwargs=kwargs)
    regularizer = create_regularizer(reg, model, graph, **(reg_kwargs or {}))
    train, test = load_dataset(data, data_dir)
    trainer = Trainer(
        model, regularizer, ArrayLoader(train, cfg.batch_size, True, cfg.seed, rank, world),
        ArrayLoader(test, 256, False), cfg, out, progress, make_distiller(distill, model, (1, c, h, w)),
    )  # fmt: skip
    if resume:
        trainer.resume()
    result = trainer.fit()
    if rank == 0 and result["status"] == "done":
        save_pruned(model.cpu(), arch_spec(name, kwargs, graph.fingerprint, changes), out / "model")
        importance = {str(g): [float(v) for v in s] for g, s in regularizer.importance().items()}
        record = {"regularizer": regularizer.name, "fingerprint": graph.fingerprint, "groups": importance}
        atomic_write_text(out / "importance.json", json.dumps(record))
        summary = {"model": name, "from": model_ref, "data": data, "regularizer": reg, "reg_kwargs": reg_kwargs or {},
                   "config": asdict(cfg), "world_size": world, "result": result,
                   "distill": asdict(distill) if distill else None}
        atomic_write_text(out / RUN_FILE, json.dumps(summary, indent=1))
    if world > 1:
        dist.barrier()
    return result


def make_distiller(cfg: DistillConfig | None, student: torch.nn.Module, shape: tuple[int, ...]) -> Distiller | None:
    """The teacher of ``cfg`` (a registry name with its pretrained weights, or a saved folder), checked to
    answer with as many classes as the student."""
    if cfg is None:
        return None
    teacher = load_model_ref(cfg.teacher, pretrained=not Path(cfg.teacher).is_dir())[0].eval()
    with torch.no_grad():
        x = torch.zeros(shape)
        t, s = teacher(x).shape, student.eval()(x).shape
    student.train()
    if t != s:
        raise RunError(f"teacher {cfg.teacher} answers {tuple(t)} where the student answers {tuple(s)}")
    return Distiller(teacher, cfg, student)


def eval_run(
    model_ref: str, data: str = "cifar10", split: str = "test", data_dir: str | None = None, pretrained: bool = False
) -> float:
    """Top-1 accuracy of a model (name, training run, or pruned folder) on a dataset split."""
    model, *_ = load_model_ref(model_ref, pretrained)
    train, test = load_dataset(data, data_dir)
    loader = ArrayLoader(train if split == "train" else test, 256, False)
    return evaluate(model, loader, torch.device("cpu"))
