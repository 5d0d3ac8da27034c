"""edgeprune: structured pruning driven by latency measured on the target device.

The stages, one public entry point each (see the README's Python quickstart and docs/architecture.md)::

    build_graph → create_regularizer / train_run → plan_pruning / prune_run → prune_model
    → export_onnx (deployed_file: what a target's runtime loads) → validate;  run_compress() runs them all, resumably.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module; imported on first use so `import edgeprune` stays light
_API = {
    "create_model": "edgeprune.models",
    "build_graph": "edgeprune.graph",
    "create_regularizer": "edgeprune.regularize",
    "SparsityHook": "edgeprune.regularize",
    "train_run": "edgeprune.train.run",
    "Budget": "edgeprune.plan.planner",
    "PlanConstraints": "edgeprune.plan.planner",
    "plan_pruning": "edgeprune.plan.planner",
    "PruneSettings": "edgeprune.plan.run",
    "prune_run": "edgeprune.plan.run",
    "shrink_run": "edgeprune.plan.run",
    "prune_model": "edgeprune.prune",
    "load_pruned": "edgeprune.prune",
    "export_onnx": "edgeprune.export",
    "deployed_file": "edgeprune.export",
    "load_target": "edgeprune.targets",
    "Profile": "edgeprune.latency",
    "LatencyModel": "edgeprune.latency.model",
    "EdgepruneError": "edgeprune.errors",
    "DataError": "edgeprune.train.folder",
    "DistillConfig": "edgeprune.train.distill",
    "validate": "edgeprune.validation",
    "resolve_model": "edgeprune.validation",
    "CompressConfig": "edgeprune.compress",
    "run_compress": "edgeprune.compress:compress",  # not `compress`: that name is the submodule
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        module, _, attr = _API[name].partition(":")
        return getattr(importlib.import_module(module), attr or name)
    raise AttributeError(f"module 'edgeprune' has no attribute {name!r}")
