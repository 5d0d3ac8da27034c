"""Stage packages import only earlier stages (docs/architecture.md, "Layering"): no import cycles, and
graph -> prune -> latency -> plan holds (surgery never needs latency, latency never needs the planner)."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgeprune

ROOT = Path(edgeprune.__file__).parent
# importable from anywhere; they import only each other
FOUNDATIONS = ["errors", "paths", "atomic", "logs", "targets", "timing", "macs", "resources"]
# in order: a stage may import the foundations, itself and the stages before it
STAGES = ["models", "graph", "prune", "backends", "export", "kit", "latency", "plan", "regularize", "train",
          "integrations", "layer_times", "report", "validation", "compress", "cli"]  # fmt: skip


def stage_of(module: str) -> str:
    """The stage of a top-level module of edgeprune (the older flat CLI files cli_*.py belong to cli)."""
    return "cli" if module.startswith("cli") else module


def rank(stage: str) -> int:
    return -1 if stage in FOUNDATIONS else STAGES.index(stage)


def test_every_module_has_a_place_in_the_layering():
    unplaced = [m.name for m in pkgutil.iter_modules([str(ROOT)]) if stage_of(m.name) not in FOUNDATIONS + STAGES]
    assert not unplaced, f"give {unplaced} a place in FOUNDATIONS or STAGES here and in docs/architecture.md"


# One fresh interpreter loads the third-party libraries (torch takes seconds), then forks a child per stage
# that imports every module of that stage and reports the edgeprune modules it loaded.
PROBE = """
import importlib, json, os, pkgutil, sys
# third-party libraries only: loading them here keeps every edgeprune module out of the parent
for lib in ("numpy", "torch", "torchvision", "onnx", "onnxruntime", "safetensors", "click", "tqdm", "PIL"):
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
report = {}
for stage in sys.argv[1:]:
    r, w = os.pipe()
    if os.fork() == 0:
        os.close(r)
        try:
            pkg = importlib.import_module("edgeprune." + stage)
            for m in pkgutil.walk_packages(getattr(pkg, "__path__", []), pkg.__name__ + "."):
                importlib.import_module(m.name)
            text = " ".join(sorted({n.split(".")[1] for n in sys.modules if n.startswith("edgeprune.")}))
        except BaseException as exc:
            text = "ERROR " + repr(exc)
        os.write(w, text.encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.wait()
    report[stage] = b"".join(chunks).decode()
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def loaded_by_stage() -> dict[str, str]:
    if not hasattr(__import__("os"), "fork"):
        pytest.skip("the import probe forks a child per stage")
    out = subprocess.run([sys.executable, "-c", PROBE, *FOUNDATIONS, *STAGES[:-1]], capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("stage", FOUNDATIONS + STAGES[:-1])  # cli is last: it may load anything
def test_importing_a_stage_loads_no_later_stage(stage, loaded_by_stage):
    """Every module of the stage imported in a fresh interpreter: what it pulls in at import time."""
    loaded = loaded_by_stage[stage]
    assert not loaded.startswith("ERROR"), loaded
    later = sorted(s for s in {stage_of(m) for m in loaded.split()} if rank(s) > rank(stage))
    assert not later, f"importing edgeprune.{stage} loads the later stage(s) {later}"


def imported_stages(path: Path) -> set[str]:
    """Stages a source file imports anywhere, function bodies included (imports deferred to a call)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            if node.module == "edgeprune":  # from edgeprune import timing
                names |= {f"edgeprune.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return {stage_of(n.split(".")[1]) for n in names if n.startswith("edgeprune.")}


def test_no_module_imports_a_later_stage_even_when_deferred():
    known = set(FOUNDATIONS + STAGES)
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        stage = stage_of(parts[0].removesuffix(".py"))
        if stage not in known:  # edgeprune/__init__.py: the lazy public API, above every stage
            continue
        wrong += [f"{path.relative_to(ROOT.parent)} imports edgeprune.{s}"
                  for s in sorted(imported_stages(path) & known) if rank(s) > rank(stage)]  # fmt: skip
    assert not wrong, "\n".join(wrong)
