"""The same two ResNet-56 plans (stage widths 8/16/32: edgeprune's and Torch-Pruning uniform's, identical ONNX
graphs) four times each in one interleaved run: how far separate sessions of one model spread.

    python bench/r56-shapes/copies.py 3   # rounds, times the target's
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[2] / "tools")]
from bench_planner import measure, paired  # noqa: E402
from explore import stage_plan  # noqa: E402
from peer_plans import torch_pruning_plans  # noqa: E402

from edgeprune.graph import build_graph  # noqa: E402
from edgeprune.models import create_model  # noqa: E402
from edgeprune.prune import prune_model  # noqa: E402
from edgeprune.targets import load_target  # noqa: E402


def main() -> None:
    warnings.simplefilter("ignore")
    m = create_model("cifar_resnet56", pretrained=True).eval()
    g = build_graph(m, torch.randn(1, 3, 32, 32), model_name="cifar_resnet56")
    ours = prune_model(m, g, stage_plan(m, g, (8, 16, 32)))[0].eval()
    tp = torch_pruning_plans(m, "cifar_resnet56", (1, 3, 32, 32), 0.5)["Torch-Pruning uniform"]
    models = {"dense": (m, None)}
    for i in range(4):
        models[f"ours{i}"], models[f"tp{i}"] = (ours, None), (tp, None)
    ms, rounds = measure("cifar_resnet56", load_target("cpu-ort"), models, int(sys.argv[1]))
    for k in ms:
        print(k, round(ms[k], 3), [round(v, 2) for v in paired(rounds, "dense", k)] if k != "dense" else "")


if __name__ == "__main__":
    main()
