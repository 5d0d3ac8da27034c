"""Every stored two-pass `profile check` predicted again with the profile that ships now (no timing), so the
issue's goal -- the predictor's median error within the measurement's own pass-to-pass spread on every
committed profile -- is read off one table. Writes status.json and status.md beside this file.

The checks draw the same seeded plans, so a second table puts each (target, model)'s runs together: how far
one run's measured speedup of a plan strays from the mean of all runs (run to run), against the shipped
predictor's error on that mean.

    python bench/targets/status/replay_all.py [--profile TARGET=PATH ...] [--out NAME]

``--profile`` predicts one target with another profile file (an unshipped fit, an earlier version) and writes
NAME.json / NAME.md instead of status.*.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import warnings
from pathlib import Path

import numpy as np

from edgeprune.latency import Profile
from edgeprune.latency.check import replay_check
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
HERE = Path(__file__).parent
ROOT = HERE.parents[2]
CHECKS = {  # stored check -> the target it timed on
    "bench/profiles/check-cpu-openvino-2pass.json": "cpu-openvino",
    "bench/profiles/check-cpu-openvino-int8.json": "cpu-openvino-int8",
    "bench/profiles/check-cpu-ort-int8-2pass.json": "cpu-ort-int8",
    "bench/profiles/check-cpu-xnnpack.json": "cpu-xnnpack",
    "bench/targets/act/check-cpu-openvino-int8.json": "cpu-openvino-int8",
    "bench/targets/act/check-cpu-openvino.json": "cpu-openvino",
    "bench/targets/act/check-cpu-ort-int8.json": "cpu-ort-int8",
    "bench/targets/act/check-cpu-xnnpack.json": "cpu-xnnpack",
    "bench/targets/refit/check-cpu-openvino.json": "cpu-openvino",
    "bench/targets/refit/check-cpu-ort-int8.json": "cpu-ort-int8",
    "bench/targets/refit/check-cpu-xnnpack.json": "cpu-xnnpack",
    "bench/targets/dec03/check-ov8-mbv2.json": "cpu-openvino-int8",
    "bench/targets/dec03/check-ov8-r56.json": "cpu-openvino-int8",
    "bench/targets/dec03/check-x8-r56.json": "cpu-xnnpack-int8",
    "bench/targets/dec03b/check-fix-ov8.json": "cpu-openvino-int8",
    "bench/targets/dec03b/check-fix-x32.json": "cpu-xnnpack",
    "bench/targets/dec03b/check-x32.json": "cpu-xnnpack",
    "bench/targets/fold/check-cpu-xnnpack-int8-r56.json": "cpu-xnnpack-int8",
    "bench/targets/fold/check-cpu-xnnpack-r56.json": "cpu-xnnpack",
    "bench/targets/widths/check-cpu-xnnpack-cifar_resnet56.json": "cpu-xnnpack",
    "bench/targets/widths/check-cpu-xnnpack-mobilenet_v2.json": "cpu-xnnpack",
    "bench/targets/widths/check-cpu-ort-int8-mobilenet_v2.json": "cpu-ort-int8",
    "bench/targets/widths/check-cpu-openvino-mobilenet_v2.json": "cpu-openvino",
    "bench/targets/status/check-cpu-ort.json": "cpu-ort",
    # 2026-12-06, an AMD EPYC of family 25, model 17 (the Intel Xeon's checks of 2026-12-05 left out)
    "bench/targets/xnnpack-sessions/check-mobilenet_v2.json": "cpu-xnnpack",
    "bench/targets/intel-all/check-cpu-xnnpack.json": "cpu-xnnpack",
    "bench/targets/zen4/check-cpu-openvino.json": "cpu-openvino",
    "bench/targets/zen4/check-cpu-openvino-int8.json": "cpu-openvino-int8",
    "bench/targets/zen4/check-cpu-ort-int8.json": "cpu-ort-int8",
    "bench/targets/zen4/check-cpu-ort.json": "cpu-ort",  # 15:21-15:31, settled runs
    "bench/targets/rank/check-cpu-xnnpack.json": "cpu-xnnpack",  # the profile shipped since then, 19:04-19:15
    "bench/targets/narrow/again/check-cpu-openvino.json": "cpu-openvino",  # 2026-12-06 23:34
    # 2026-12-07, programs with ResNet-56's shortcut inside XNNPACK
    "bench/targets/etdump/check-cpu-xnnpack-r56.json": "cpu-xnnpack",
    "bench/targets/etdump/check-cpu-xnnpack-r56-refit.json": "cpu-xnnpack",
    "bench/targets/etdump/check-cpu-xnnpack-int8-r56-refit.json": "cpu-xnnpack-int8",
}


def committed(path: str) -> str:
    """When the check was committed (UTC), as a stand-in for when it ran."""
    out = subprocess.run(["git", "log", "-1", "--date=format-local:%Y-%m-%d %H:%M", "--format=%cd", "--", path],
                         capture_output=True, text=True, cwd=ROOT, env={"TZ": "UTC"})  # fmt: skip
    return out.stdout.strip()


parser = argparse.ArgumentParser()
parser.add_argument("--profile", action="append", default=[], metavar="TARGET=PATH")
parser.add_argument("--out", default="status")
args = parser.parse_args()
override = dict(item.split("=", 1) for item in args.profile)
rows, runs = [], {}
for path, target_name in CHECKS.items():
    if not (ROOT / path).exists():
        continue
    target = load_target(target_name)
    shipped = ROOT / f"edgeprune/resources/profiles/{target_name}--amd-epyc-2c.json"
    profile = Profile.load(override.get(target_name, shipped), strict=False)
    reports = json.loads((ROOT / path).read_text())
    for report in reports if isinstance(reports, list) else [reports]:
        if report["model"] not in profile.calibration or "repeat_speedup_median_abs_pct" not in report:
            continue
        again = replay_check(profile, target, report)
        runs.setdefault((target_name, report["model"]), []).append(
            ([p["measured_speedup"] for p in report["plans"]], [p["predicted_speedup"] for p in again["plans"]]))
        rows.append({"target": target_name, "model": report["model"], "check": path, "committed": committed(path),
                     "shipped_median_pct": again["median_abs_speedup_error_pct"],
                     "shipped_max_pct": again["max_abs_speedup_error_pct"],
                     "pass_to_pass_median_pct": report["repeat_speedup_median_abs_pct"],
                     "pass_to_pass_max_pct": report["repeat_speedup_max_abs_pct"]})  # fmt: skip
rows.sort(key=lambda r: (r["target"], r["model"], r["committed"]))
(HERE / f"{args.out}.json").write_text(json.dumps(rows, indent=1) + "\n")
lines = ["| target | model | check (committed, UTC) | shipped profile: median / max | pass to pass: median / max | "
         "median within? |", "|---|---|---|---:|---:|---|"]  # fmt: skip
for r in rows:
    within = "yes" if r["shipped_median_pct"] <= r["pass_to_pass_median_pct"] else "no"
    lines.append(f"| `{r['target']}` | {r['model']} | `{r['check']}` ({r['committed']}) | "
                 f"{r['shipped_median_pct']:.1f} / {r['shipped_max_pct']:.1f} % | "
                 f"{r['pass_to_pass_median_pct']:.1f} / {r['pass_to_pass_max_pct']:.1f} % | {within} |")
lines += ["", "| target | model | checks | run to run: median / max | shipped predictor on the mean of runs: "
          "median / max | median within? |", "|---|---|---:|---:|---:|---|"]  # fmt: skip
for (target_name, model), got in sorted(runs.items()):
    if len(got) < 2:
        continue
    measured = np.array([m for m, _ in got])  # runs x plans
    mean, predicted = measured.mean(axis=0), np.array(got[0][1])
    drift = np.abs(100 * (measured / mean - 1)).ravel()
    error = np.abs(100 * (predicted / mean - 1))
    within = "yes" if np.median(error) <= np.median(drift) else "no"
    lines.append(f"| `{target_name}` | {model} | {len(got)} | {np.median(drift):.1f} / {drift.max():.1f} % | "
                 f"{np.median(error):.1f} / {error.max():.1f} % | {within} |")
(HERE / f"{args.out}.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
