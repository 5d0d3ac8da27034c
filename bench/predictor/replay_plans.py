"""Every plan a stored planner benchmark timed, predicted again by the profile it was planned with (no timing).

`tools/bench_planner.py` stores, per model, each edgeprune plan's group widths, its measured speedup over
dense (paired per round, with the interval) and what the profile predicted. This rebuilds each plan from
its widths, predicts it with the latency model as it stands now, and sets the error beside the run's own
interval, so a change to the predictor is scored on the plans the planner really makes -- not only on the
random plans of `profile check` (bench/targets/status/replay_all.py).

    python bench/predictor/replay_plans.py [--profile TARGET=PATH ...] [--out NAME] [FILE ...]

With no FILE, every `bench/**/*.json` that tools/bench_planner.py wrote and whose profile is still here (the
plain-line profiles of bench/predictor/rank/ are made by its run.sh, not committed).
``--profile`` predicts one target's plans with another profile file (an unshipped fit).
Writes NAME.json and NAME.md beside this script (default NAME: plans). `plans-line.*` were written with the
code before the floor below the lowest calibration run (commit c68df12 on the import path).
"""

from __future__ import annotations

import argparse
import functools
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from edgeprune.atomic import atomic_write_text
from edgeprune.graph import build_graph
from edgeprune.latency import Profile, collect_layers
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import find_profile
from edgeprune.latency.profiler import build_model, model_input_shape
from edgeprune.prune import Plan, prune_model
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
HERE = Path(__file__).parent
ROOT = HERE.parents[1]


@functools.cache
def load_profile(path: Path) -> Profile:
    """A profile file, read once however many runs and plans name it."""
    return Profile.load(path, strict=False)


def stored_runs() -> list[Path]:
    """Planner benchmark files under bench/ (they hold rows with per-plan widths)."""
    found = []
    for path in sorted((ROOT / "bench").rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("rows"), list) and "settings" in data:
            if any(isinstance(v, dict) and "widths" in v for r in data["rows"] for v in r.values()):
                found.append(path)
    return found


OVERRIDE: dict[str, str] = {}
ALSO = "latency-driven, profile "  # tools/bench_planner.py's label of an --also-profile plan


def profile_of(data: dict, target) -> Path | None:
    if target.name in OVERRIDE:
        return Path(OVERRIDE[target.name])
    ref = data["settings"].get("profile")
    if ref in (None, "committed"):
        return find_profile(target.name, target.backend)
    path = ROOT / ref
    return path if path.is_file() else None


def replay(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    try:
        target = load_target(data["target"])
    except Exception as exc:  # a target file of another machine: not replayable here
        print(f"skip {path.relative_to(ROOT)}: {exc}")
        return []
    ppath = profile_of(data, target)
    if ppath is None:
        print(f"skip {path.relative_to(ROOT)}: its profile {data['settings'].get('profile')} is not here")
        return []
    profile = load_profile(ppath)
    out = []
    for row in data["rows"]:
        name = row["model"]
        torch.manual_seed(0)
        try:
            model = build_model(name, target)
        except Exception as exc:
            print(f"skip {name} in {path.relative_to(ROOT)}: {exc}")
            continue
        shape = model_input_shape(name, target)
        graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=name)
        dense = collect_layers(model, shape)
        for label, v in row.items():
            if not (isinstance(v, dict) and "widths" in v and v.get("predicted_speedup")):
                continue
            # a plan of `--also-profile P` was planned and priced by P: predicted by P, where P is still here
            other = label.removeprefix(ALSO) if label.startswith(ALSO) else None
            if other and not (ROOT / other).is_file():
                continue
            latency = LatencyModel(load_profile(ROOT / other) if other else profile, name, shape[-1])
            if latency.calibration is None:
                continue
            dense_ms = latency.predict(dense).ms
            keep = {int(g): list(range(k)) for g, (k, _) in v["widths"].items()}
            try:
                pruned, _ = prune_model(model, graph, Plan(name, graph.fingerprint, keep))
            except Exception as exc:  # the graph changed since the run (group ids no longer match)
                print(f"skip {label} of {name} in {path.relative_to(ROOT)}: {exc}")
                continue
            predicted = dense_ms / latency.predict_pruned(dense, collect_layers(pruned.eval(), shape)).ms
            ci = v.get("speedup_ci") or [v["measured_speedup"]] * 3
            out.append({"run": str(path.relative_to(ROOT)), "target": target.name, "model": name, "plan": label,
                        "measured": ci[0], "ci": ci[1:], "stored_predicted": v["predicted_speedup"],
                        "predicted": predicted, "error": predicted / ci[0] - 1,
                        "half_interval": (ci[2] - ci[1]) / 2 / ci[0] if len(ci) == 3 else None})  # fmt: skip
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| run | model | plan | measured (95 % CI) | predicted then | predicted now | error now |",
             "|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['run']} | {r['model']} | {r['plan']} | {r['measured']:.2f}x ({r['ci'][0]:.2f}–"
                     f"{r['ci'][1]:.2f}) | {r['stored_predicted']:.2f}x | {r['predicted']:.2f}x | "
                     f"{100 * r['error']:+.1f} % |")  # fmt: skip
    errors = np.abs([r["error"] for r in rows])
    lines += ["", f"{len(rows)} plans: median |error| {100 * np.median(errors):.1f} %, "
              f"90th percentile {100 * np.percentile(errors, 90):.1f} %, max {100 * errors.max():.1f} %"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--out", default="plans")
    parser.add_argument("--profile", action="append", default=[], metavar="TARGET=PATH")
    args = parser.parse_args()
    OVERRIDE.update(item.split("=", 1) for item in args.profile)
    rows = [r for f in (args.files or stored_runs()) for r in replay(Path(f).resolve())]
    atomic_write_text(HERE / f"{args.out}.json", json.dumps(rows, indent=1) + "\n")
    text = markdown(rows)
    atomic_write_text(HERE / f"{args.out}.md", text)
    print(text)


if __name__ == "__main__":
    main()
