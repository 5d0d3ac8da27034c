"""A stored YOLO `profile check` read as a table: its random plans predicted again with each profile given (no
timing), beside the measurement's pass-to-pass spread, and the planner's plan as the check's own profile priced it.

    python bench/yolo/zen4/replay.py TARGET CHECK.json PROFILE [PROFILE ...] > table.md
"""

from __future__ import annotations

import json
import sys
import warnings

from edgeprune.latency import Profile
from edgeprune.latency.check import replay_check
from edgeprune.targets import load_target

warnings.simplefilter("ignore")  # a profile from another CPU warns; here that is the point
target_name, check_path, *profiles = sys.argv[1:]
target = load_target(target_name)
report = json.load(open(check_path))
report = report[0] if isinstance(report, list) else report
lines = ["| profile | random plans: median / max speedup error | pass to pass: median / max |", "|---|---:|---:|"]
for path in profiles:
    again = replay_check(Profile.load(path, strict=False), target, report)
    error = f"{again['median_abs_speedup_error_pct']:.1f} / {again['max_abs_speedup_error_pct']:.1f} %"
    spread = f"{report['repeat_speedup_median_abs_pct']:.1f} / {report['repeat_speedup_max_abs_pct']:.1f} %"
    lines.append(f"| `{path}` | {error} | {spread} |")
lines += ["", "| plan (priced by the check's profile) | predicted speedup | measured speedup | error | its passes |",
          "|---|---:|---:|---:|---|"]
for p in report["plans"] + report.get("planned", []):
    passes = " / ".join(f"{d / m:.3f}" for d, m in zip(p["passes_dense_ms"], p["passes_ms"]))
    lines.append(f"| {p.get('plan', 'random')} | {p['predicted_speedup']:.3f}× | {p['measured_speedup']:.3f}× | "
                 f"{100 * (p['predicted_speedup'] / p['measured_speedup'] - 1):+.1f} % | {passes} |")
print("\n".join(lines))
