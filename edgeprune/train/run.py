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
from edgeprune.models.registry import Pretrained
from edgeprune.prune import load_model_ref
from edgeprune.prune.serialize import saved_side
from edgeprune.regularize import SparsityHook
from edgeprune.train.data import ArrayLoader, is_folder, load_dataset
from edgeprune.train.distill import DistillConfig, Distiller
from edgeprune.train.sources import Source, folder_accuracy, load_for_data, make_loaders
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
    pretrained: Pretrained = False,
    resume: bool = False,
    data_dir: str | None = None,
    progress: bool = True,
    distill: DistillConfig | None = None,
    input_size: int | None = None,
    workers: int | None = None,
    freeze_unknown: bool = False,
) -> dict:
    """Train ``model_ref`` with regularizer ``reg`` (and, with ``distill``, learning from a teacher); writes
    checkpoint, metrics, model/, importance.json. ``freeze_unknown``: the channel graph's
    (:func:`edgeprune.graph.build_graph`)."""
    cfg = cfg or TrainConfig()
    out = Path(out_dir)
    if (out / CHECKPOINT).exists() and not resume:
        raise RunError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    rank, world = _init_distributed()
    torch.manual_seed(cfg.seed)
    # a model folder trained at another size keeps training at it unless told otherwise
    source = Source.open(data, input_size or saved_side(model_ref))
    model, name, kwargs, changes = load_for_data(model_ref, pretrained, source)
    source.tell(rank)
    shape = source.chw(name)
    graph = build_graph(model, torch.randn(1, *shape), model_name=name, model_kwargs=kwargs,
                        freeze_unknown=freeze_unknown)
    hook = SparsityHook.from_graph(model, graph, reg, **(reg_kwargs or {}))
    train, test = make_loaders(source, model, name, cfg.batch_size, cfg.seed, rank, world, workers, data_dir)
    trainer = Trainer(
        model, hook, train, test, cfg, out, progress, make_distiller(distill, model, (1, *shape)),
    )  # fmt: skip
    if resume:
        trainer.resume()
    result = trainer.fit()
    if rank == 0 and result["status"] == "done":
        hook.save(out, name, kwargs, changes, shape)  # model/ and importance.json, as a user's loop saves
        summary = {"model": name, "from": model_ref, "data": data, "regularizer": reg, "reg_kwargs": reg_kwargs or {},
                   "config": asdict(cfg), "world_size": world, "result": result,
                   "distill": asdict(distill) if distill else None, **source.record(name)}
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
    model_ref: str, data: str = "cifar10", split: str = "test", data_dir: str | None = None,
    pretrained: Pretrained = False, input_size: int | None = None, workers: int | None = None,
) -> float:  # fmt: skip
    """Top-1 accuracy of a model (name, training run, or pruned folder) on a dataset split (a folder's "test"
    split is its val/ images)."""
    model, name, *_ = load_model_ref(model_ref, pretrained)
    if is_folder(data):
        side = input_size or saved_side(model_ref)
        return folder_accuracy(model, name, data, split, side, workers)
    train, test = load_dataset(data, data_dir)
    loader = ArrayLoader(train if split == "train" else test, 256, False)
    return evaluate(model, loader, torch.device("cpu"))
