"""YOLO26's dense heads (``ultralytics:yolo26n-depth.yaml``, ``yolo26n-sem.yaml``): the model answers the head's map
before decoding (log-depth, class logits), prunes within the oracle, the semantic head's training-only auxiliary
branch shrinks with the features it reads, and training or scoring such a model is a clear error."""

from __future__ import annotations

import random

import pytest
import torch

from edgeprune.errors import InputError
from edgeprune.graph import build_graph
from edgeprune.latency.variants import random_plan
from edgeprune.models import create_model, get_entry
from edgeprune.models.ultralytics_models import FAMILY
from edgeprune.prune import shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, oracle_error
from edgeprune.train.detect import detection_net

SIZE = 128
DENSE = ["yolo26n-depth.yaml", "yolo26n-sem.yaml"]


def _decoded(model, x: torch.Tensor) -> torch.Tensor:
    """What Ultralytics' own model answers in eval mode, from the raw map: depth is exp(a * log-depth + b)."""
    raw = model(x)
    head = model.model.model[-1]
    return torch.exp(head.cal_a * raw + head.cal_b) if type(head).__name__ == "Depth" else raw


@pytest.mark.parametrize("name", DENSE)
def test_a_dense_head_answers_its_map_and_prunes_exactly(name):
    assert get_entry(f"ultralytics:{name}").family == FAMILY
    torch.manual_seed(0)
    model = liven(create_model(f"ultralytics:{name}"), SIZE).eval()
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(_decoded(model, x), model.model(x))
    graph = build_graph(model, torch.randn(1, 3, SIZE, SIZE), model_name=f"ultralytics:{name}")
    assert graph.prunable_groups
    for seed in (1, 2):
        plan = random_plan(graph, random.Random(seed), low=0.2)
        pruned, _ = shrink(model, graph, plan)
        assert oracle_error(model, graph, plan, pruned, x) <= ORACLE_TOLERANCE
    head = pruned.model.model[-1]
    if type(head).__name__ == "SemanticSegment":  # the auxiliary head, which only training runs, still fits
        main, aux = pruned.model.train()(x)
        assert aux.shape[1] == head.nc and main.shape[1] == head.nc
    with pytest.raises(InputError, match="trains and scores detection"):
        detection_net(model, name)
