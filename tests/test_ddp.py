"""Multi-process training through torchrun + DDP (gloo, 2 CPU processes) vs one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from edgeprune.train.run import train_run
from edgeprune.train.trainer import TrainConfig

TESTS = Path(__file__).resolve().parent


def torchrun_train(args: list[str], out: Path) -> None:
    """`edgeprune train ARGS --out OUT` as two torchrun processes (one thread each)."""
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    torchrun = str(Path(sys.executable).parent / "torchrun")
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "edgeprune.cli", "train", *args,
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_two_processes_match_one_on_the_same_global_batch(tmp_path, monkeypatch):
    args = ["--model", "tiny_nets:plain_cnn", "--data", "synthetic", "--epochs", "2", "--max-steps", "3",
            "--reg", "ssr_l21", "--every", "2", "--lr", "0.05", "--seed", "2"]  # fmt: skip
    torchrun_train([*args, "--batch-size", "8"], tmp_path / "ddp")
    monkeypatch.syspath_prepend(str(TESTS))
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, seed=2, max_steps_per_epoch=3)
    train_run("tiny_nets:plain_cnn", tmp_path / "one", "synthetic", "ssr_l21", {"every": 2}, cfg, progress=False)
    a = load_file(tmp_path / "one" / "model" / "weights.safetensors")
    b = load_file(tmp_path / "ddp" / "model" / "weights.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), k
    records = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["ranks_consistent"] for r in records)  # AULM F/Y identical on both ranks
    run = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert run["world_size"] == 2


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_two_processes_shard_an_image_folder_like_one_process(tmp_path, monkeypatch):
    """Each rank reads its own DistributedSampler shard; the ranks' batches of 4 together are one process's
    batch of 8, with the same crops and flips, so the weights match."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(10):  # plain_cnn answers 10 classes
        for split, n in (("train", 3), ("val", 1)):
            (tmp_path / "f" / split / f"c{k}").mkdir(parents=True)
            for i in range(n):
                image = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
                Image.fromarray(image).save(tmp_path / "f" / split / f"c{k}" / f"{i}.png")
    args = ["--model", "tiny_nets:plain_cnn", "--data", str(tmp_path / "f"), "--input-size", "16", "--epochs", "1",
            "--max-steps", "2", "--reg", "none", "--lr", "0.05", "--seed", "2", "--workers", "0"]  # fmt: skip
    torchrun_train([*args, "--batch-size", "4"], tmp_path / "ddp")
    monkeypatch.syspath_prepend(str(TESTS))
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.05, seed=2, max_steps_per_epoch=2)
    train_run("tiny_nets:plain_cnn", tmp_path / "one", str(tmp_path / "f"), "none", {}, cfg, progress=False,
              input_size=16, workers=0)  # fmt: skip
    a = load_file(tmp_path / "one" / "model" / "weights.safetensors")
    b = load_file(tmp_path / "ddp" / "model" / "weights.safetensors")
    import tiny_nets

    torch.manual_seed(2)
    init = {f"{k}": v for k, v in tiny_nets.plain_cnn().state_dict().items()}
    assert a.keys() == b.keys() == init.keys()
    assert not torch.allclose(a["0.weight"], init["0.weight"])  # two steps did move the weights
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), k
    record = json.loads((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()[0])
    assert record["ranks_consistent"] and json.loads((tmp_path / "ddp" / "run.json").read_text())["world_size"] == 2
