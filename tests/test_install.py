"""edgeprune as a user gets it: a wheel, installed outside the checkout, run from an empty folder."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], check=True, capture_output=True)  # fmt: skip
    (found,) = out.glob("edgeprune-*.whl")
    return found


def test_wheel_ships_targets_profiles_collector_and_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"edgeprune/resources/{kind}/{p.name}" for kind in ("targets", "profiles")
               for p in (ROOT / "edgeprune" / "resources" / kind).iterdir() if p.suffix in (".toml", ".json")}
    assert any("/targets/" in n for n in shipped) and any("/profiles/" in n for n in shipped)
    assert shipped <= names
    assert {"edgeprune/kit/collect.py", "edgeprune/timing.py"} <= names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    metadata = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith("METADATA"))
    assert "Requires-Dist: Pillow" in metadata and "Requires-Dist: platformdirs" in metadata
    assert 'Requires-Dist: tomli>=2; python_version < "3.11"' in metadata


@pytest.mark.slow
def test_installed_wheel_works_from_an_empty_folder(wheel, tmp_path):
    """A fresh venv (its dependencies borrowed from this one, so nothing is downloaded), the wheel installed
    into it, and the done-when commands run from an empty folder with the user folder in EDGEPRUNE_HOME."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)  # fmt: skip
    venv_site = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
    # a plain path entry: the dev venv's editable-install hook (a .pth of its own) is not run from here
    Path(venv_site, "deps.pth").write_text(site.getsitepackages()[0] + "\n")
    work, home = tmp_path / "empty", tmp_path / "home"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPRUNE_")} | {"EDGEPRUNE_HOME": str(home)}

    def edgeprune(*args: str) -> str:
        r = subprocess.run([str(venv / "bin" / "edgeprune"), *args], cwd=work, env=env, capture_output=True,
                           text=True)  # fmt: skip
        assert r.returncode == 0, r.stderr
        return r.stdout

    where = subprocess.run([str(py), "-c", "import edgeprune; print(edgeprune.__file__)"], cwd=work, env=env,
                           check=True, capture_output=True, text=True).stdout  # fmt: skip
    assert where.startswith(venv_site), where
    assert "cpu-ort" in edgeprune("targets") and "runs here" in edgeprune("targets")
    edgeprune("prune", "cifar_resnet20", "--target", "cpu-ort", "--latency", "0.8x", "--out", "pruned")
    assert (work / "pruned" / "model" / "arch.json").is_file()
    edgeprune("profile", "measure", "cpu-ort", "--model", "cifar_resnet20")
    written = list((home / "profiles").glob("cpu-ort--*.json"))
    assert len(written) == 1
    assert sorted(p.name for p in work.iterdir()) == ["pruned"]  # nothing else written where it ran
