"""Predict the seeded random plans of earlier `profile check` runs again with other profiles (no timing) and
compare with the speedups those runs measured.

    python bench/targets/widths/repredict.py TARGET CHECK_JSON PROFILE [PROFILE ...]
"""

from __future__ import annotations

import json
import statistics
import sys
import warnings

from edgeprune.latency import Profile
from edgeprune.latency.check import check_variants, predicted_ms
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
target_name, check, *profiles = sys.argv[1:]
target = load_target(target_name)
out = {"target": target_name, "check": check, "models": {}}
for report in json.load(open(check)):
    name, plans = report["model"], report["plans"]
    _, layers = check_variants(name, target, len(plans))
    measured = [p["measured_speedup"] for p in plans]
    row = {"measured_speedups": measured, "pass_to_pass_pct": [report.get("repeat_speedup_median_abs_pct"),
                                                               report.get("repeat_speedup_max_abs_pct")]}
    for path in profiles:
        pred = predicted_ms(Profile.load(path, strict=False), name, layers)
        errs = [100 * ((pred[0] / pred[j + 1]) / m - 1) for j, m in enumerate(measured)]
        row[path] = {"predicted_speedups": [pred[0] / x for x in pred[1:]],
                     "median_abs_speedup_error_pct": statistics.median(abs(e) for e in errs),
                     "max_abs_speedup_error_pct": max(abs(e) for e in errs)}  # fmt: skip
    out["models"][name] = row
print(json.dumps(out, indent=1))
