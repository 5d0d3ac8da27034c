"""A second, small device kit: the planner's own plans, timed on the device, added to the imported profile."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner
from conftest import FAST

from edgeprune.cli import main
from edgeprune.cli.profile import _planner
from edgeprune.kit.collect import RESULT_SCHEMA
from edgeprune.latency import Profile, ProfileError, collect_layers
from edgeprune.latency.calibration import dense_reference
from edgeprune.latency.kit import import_result, write_kit
from edgeprune.latency.profiler import build_model
from edgeprune.latency.variants import CALIBRATION_SEED, planned_variants


def collect(kit):
    """The kit's own collector, in a process where torch and edgeprune cannot be imported."""
    blocker = ("import sys, runpy; sys.modules['torch'] = None; sys.modules['edgeprune'] = None; "
               f"sys.argv = ['collect.py', {str(kit)!r}]; runpy.run_path({str(kit / 'collect.py')!r}, "
               "run_name='__main__')")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return kit / "result.json"


def test_a_planned_kit_calibrates_an_imported_profile_on_the_planners_own_plans(tiny_profile, tmp_path):
    """Profiles from a kit had no planned runs (nothing is planned on the device, and no table exists when the
    first kit is written): a second kit times the planner's plans there, and its result joins the profile."""
    target, path, profile = tiny_profile
    settings = replace(FAST, calibration_planned=(0.5,))
    kit = write_kit(target, ["cifar_resnet20"], tmp_path / "kit2", settings, planned=(profile, _planner(target)))
    manifest = json.loads((kit / "manifest.json").read_text())
    assert manifest["entries"] == []  # no micro-models: the tables are the first kit's
    assert [c["label"] for c in manifest["calibration"]] == ["uniform-0.0", "planned-0.5x"]
    result = collect(kit)
    with pytest.raises(ProfileError, match="planned plans only"):
        import_result(result)
    fitted = import_result(result, into=profile)
    assert {k: vars(t) for k, t in fitted.tables.items()} == {k: vars(t) for k, t in profile.tables.items()}
    points = fitted.calibration["cifar_resnet20"].points
    before = profile.calibration["cifar_resnet20"].points
    assert points[: len(before)] == before and [p["label"] for p in points[len(before) :]] == ["planned-0.5x"]
    with torch.random.fork_rng():  # the plan the planner makes with the profile, as the kit wrote it
        torch.manual_seed(CALIBRATION_SEED)
        model = build_model("cifar_resnet20", target)
    shape = (1, 3, 32, 32)
    (_, pruned), = planned_variants(model, "cifar_resnet20", shape, collect_layers(model, shape),
                                    _planner(target)(profile, ["0.5x"]))  # fmt: skip
    assert points[-1]["layers"] == [[x.geometry.key, x.cin, x.cout] for x in collect_layers(pruned, shape)]
    assert points[-1]["measured_ratio"] > 0 and fitted.calibration != profile.calibration
    assert points[-1]["measured_ms"] == pytest.approx(points[-1]["measured_ratio"] * dense_reference(before))
    again = import_result(result, into=fitted)  # importing twice replaces the run, it does not add it again
    assert [p["label"] for p in again.calibration["cifar_resnet20"].points] == [p["label"] for p in points]
    runner = CliRunner()
    out = runner.invoke(main, ["profile", "import", "cpu-ort", str(result), "--profile", str(path), "--out",
                               str(tmp_path / "p.json")])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "calibrated on the planner's own plans" in out.output
    assert Profile.load(tmp_path / "p.json").calibration["cifar_resnet20"].points[-1]["label"] == "planned-0.5x"
    out = runner.invoke(main, ["profile", "import", "cpu-torch", str(result), "--profile", str(path)])
    assert out.exit_code == 1 and "target" in out.output
    elsewhere = tmp_path / "elsewhere.json"  # the runs must come from the device the tables were measured on
    data = json.loads(result.read_text())
    elsewhere.write_text(json.dumps({**data, "device": {**data["device"], "cpu": "Another CPU"}}))
    first = tmp_path / "first.json"  # a first kit's result never replaces the profile named by --profile
    first.write_text(json.dumps({**data, "measurements": [{"key": "k", "cin": 1, "cout": 1, "ms": 1.0,
                                                            "spread_pct": 0.0}]}))  # fmt: skip
    before = path.read_text()
    out = runner.invoke(main, ["profile", "import", "cpu-ort", str(first), "--profile", str(path)])
    assert out.exit_code == 1 and "without --profile" in out.output and path.read_text() == before
    with pytest.raises(ProfileError, match="another device.*cpu: profile .* vs kit 'Another CPU'"):
        import_result(elsewhere, into=profile)


def test_every_planned_run_of_a_kit_is_stated_on_the_profiles_own_dense_reference(tiny_profile, tmp_path):
    """Each run's ms is its device ratio times the dense ms of the profile's own runs, taken before the kit's
    runs join them: a later run of the same kit is not stated on a reference the earlier one moved."""
    target, _, profile = tiny_profile
    base = profile.calibration["cifar_resnet20"].points
    layers = base[0]["layers"]
    runs = [{"model": "cifar_resnet20", "label": label, "layers": layers, "measured_ms": 1.0, "measured_ratio": r,
             "dense_ms": d} for label, r, d in (("uniform-0.0", 1.0, 50.0), ("planned-0.7x", 0.8, 50.0),
                                                 ("planned-0.45x", 0.6, 60.0))]  # fmt: skip
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"schema": RESULT_SCHEMA, "target": profile.target, "device": profile.device,
                                  "settings": {}, "measurements": [], "calibration": runs}))  # fmt: skip
    points = import_result(result, into=profile).calibration["cifar_resnet20"].points
    reference = dense_reference(base)
    assert [p["label"] for p in points[len(base) :]] == ["planned-0.7x", "planned-0.45x"]
    assert [p["measured_ms"] for p in points[len(base) :]] == pytest.approx([0.8 * reference, 0.6 * reference])
    assert [p["dense_ms"] for p in points[len(base) :]] == [50.0, 60.0]
