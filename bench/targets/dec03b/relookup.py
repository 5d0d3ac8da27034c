"""Refit a profile's lookups per model from its stored calibration runs (no timing), then re-predict the random
plans of earlier `profile check` runs (seeded, so the same plans) against the speedups those runs measured.

    python bench/targets/dec03b/relookup.py TARGET PROFILE_IN PROFILE_OUT CHECK_JSON [CHECK_JSON ...]
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import replace

from edgeprune.latency import Profile
from edgeprune.latency.check import replay_check
from edgeprune.latency.profiler import choose_lookup_and_calibrate
from edgeprune.paths import shipped_dir
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
target_name, src, dst, *checks = sys.argv[1:]
target = load_target(target_name)
old = Profile.load(src)
new = choose_lookup_and_calibrate(old, {name: cal.points for name, cal in old.calibration.items()})
new = replace(new, width_scale=old.width_scale, removal_scale=old.removal_scale)
new.save(dst)
shipped = Profile.load(next(shipped_dir("profiles").glob(f"{target_name}--*.json")))
out = {"target": target_name, "from": src, "lookups": new.lookups, "models": {}}
for path in checks:
    for report in json.load(open(path)):
        name = report["model"]
        row = {"check": path, "measured_speedups": [p["measured_speedup"] for p in report["plans"]]}
        for label, profile in (("joint lookup", old), ("own lookup", new), ("shipped", shipped)):
            if name not in profile.calibration:
                continue
            again = replay_check(profile, target, report)
            row[label] = {"predicted_speedups": [p["predicted_speedup"] for p in again["plans"]],
                          **{k: again[k] for k in ("median_abs_speedup_error_pct", "max_abs_speedup_error_pct")}}
        out["models"].setdefault(name, []).append(row)
print(json.dumps(out, indent=1))
