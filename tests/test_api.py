"""The README's embedding example runs as written, and docs/cli.md's command reference is current."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import edgeprune

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_resolves_to_its_stage_object():
    for name, where in edgeprune._API.items():
        module, _, attr = where.partition(":")
        assert getattr(edgeprune, name) is getattr(importlib.import_module(module), attr or name)
    with pytest.raises(AttributeError, match="no_such_name"):
        edgeprune.no_such_name  # noqa: B018


def test_readme_embedding_example_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- embedding-example -->\n```python\n(.*?)```", readme, re.S)
    assert block, "README lacks the embedding example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block.group(1), "README embedding example", "exec"), namespace)  # noqa: S102
    result = namespace["result"]
    assert result.pruned["macs"] <= 0.5 * result.dense["macs"]
    assert (tmp_path / "runs" / "r20" / "model" / "arch.json").is_file()


def test_cli_reference_doc_is_current():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "cli_reference.py"), "--check"], capture_output=True,
                       text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
