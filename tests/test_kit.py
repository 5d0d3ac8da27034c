"""The device collector stays torch-free, in the package and copied into a kit (the full round trip of a kit is
tests/test_latency.py::test_kit_round_trip_without_torch)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import edgeprune
from edgeprune import timing
from edgeprune.kit import collect

HEAVY = ("torch", "onnx", "onnxruntime", "tensorrt", "edgeprune.targets", "edgeprune.backends", "edgeprune.latency")


def run_python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_importing_the_collector_and_the_harness_pulls_in_nothing_heavy():
    code = ("import sys, edgeprune.kit.collect, edgeprune.timing; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_package_collector_runs_as_a_module_without_torch(tmp_path):
    code = ("import sys, runpy; sys.modules['torch'] = None; "
            f"sys.argv = ['collect', {str(tmp_path)!r}]; "
            "runpy.run_module('edgeprune.kit.collect', run_name='__main__')")
    proc = run_python(code)
    assert proc.returncode != 0 and "manifest.json unreadable" in proc.stderr  # it got as far as reading the kit


def test_a_copied_collector_times_with_the_harness_beside_it_not_an_installed_edgeprune(tmp_path):
    shutil.copyfile(collect.__file__, tmp_path / "collect.py")
    shutil.copyfile(timing.__file__, tmp_path / collect.TIMING_FILE)
    code = ("import sys, runpy; sys.modules['torch'] = None; sys.modules['edgeprune'] = None; "
            f"g = runpy.run_path({str(tmp_path / 'collect.py')!r}); "
            "print(g['timing'].__file__, g['time_alone'](lambda x: x, 0, 0, 2, 3)[1])")  # fmt: skip
    proc = run_python(code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    where, spread = proc.stdout.split()
    assert Path(where) == tmp_path / "timing.py" and float(spread) >= 0.0


def test_the_collector_outside_a_kit_uses_edgeprune_timing():
    assert collect.timing is timing and Path(edgeprune.__file__).parent / "kit" / "collect.py" == Path(collect.__file__)
