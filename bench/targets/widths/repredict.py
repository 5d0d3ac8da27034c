"""Predict the seeded random plans of earlier `profile check` runs again with other profiles (no timing) and
compare with the speedups those runs measured (:func:`edgeprune.latency.check.replay_check`).

    python bench/targets/widths/repredict.py TARGET CHECK_JSON PROFILE [PROFILE ...]
"""

from __future__ import annotations

import json
import sys
import warnings

from edgeprune.latency import Profile
from edgeprune.latency.check import replay_check
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
target_name, check, *profiles = sys.argv[1:]
target = load_target(target_name)
out = {"target": target_name, "check": check, "models": {}}
for report in json.load(open(check)):
    row = {"measured_speedups": [p["measured_speedup"] for p in report["plans"]],
           "pass_to_pass_pct": [report.get("repeat_speedup_median_abs_pct"), report.get("repeat_speedup_max_abs_pct")]}
    for path in profiles:
        again = replay_check(Profile.load(path, strict=False), target, report)
        row[path] = {"predicted_speedups": [p["predicted_speedup"] for p in again["plans"]],
                     **{k: again[k] for k in ("median_abs_speedup_error_pct", "max_abs_speedup_error_pct")}}
    out["models"][report["model"]] = row
print(json.dumps(out, indent=1))
