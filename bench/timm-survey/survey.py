"""timm models no test covers, each through the graph (with freeze_unknown), a seeded random plan, shrink and
the masked-equivalence oracle: one JSON line per model on stdout.

    python bench/timm-survey/survey.py NAME [NAME ...] > results.jsonl

Each model is built at random init, livened, and traced at the first of 64, 224 and 256 px that it runs at.
Run one process per model (a crash then costs one line): see run.sh.
"""

from __future__ import annotations

import json
import random
import sys
import time

import timm
import torch

from edgeprune.graph import build_graph
from edgeprune.latency.variants import random_plan
from edgeprune.prune import shrink
from edgeprune.prune.oracle import check_shrunk, liven

SIZES = (64, 224, 256)


def survey(name: str) -> dict:
    row: dict = {"name": name}
    start = time.time()
    try:
        for size in SIZES:
            try:
                model = liven(timm.create_model(name).eval(), size)
                graph = build_graph(model, torch.randn(1, 3, size, size), model_name=f"timm:{name}",
                                    freeze_unknown=True)  # fmt: skip
                break
            except Exception:  # a model that needs a larger input (asserts, a window or kernel too large): the next
                if size == SIZES[-1]:
                    raise
        row.update(size=size, groups=len(graph.groups), prunable=len(graph.prunable_groups),
                   kept_whole=sum("is kept whole" in (g.frozen or "") for g in graph.groups))  # fmt: skip
        plan = random_plan(graph, random.Random(name))
        pruned, _ = shrink(model, graph, plan)
        row["oracle"] = check_shrunk(model, graph, plan, pruned, (3, size, size))
    except Exception as exc:  # the survey records every failure and goes on
        row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    row["seconds"] = round(time.time() - start, 1)
    return row


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(json.dumps(survey(name)), flush=True)
