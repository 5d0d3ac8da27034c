"""The check's random plans (check.json, timed once) predicted again by the shipped cpu-ort profile and by the
re-measured one, so both are scored on the same measurements. No timing. Writes replay.json beside this file.

    python bench/targets/cpu-ort-132/replay.py
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from edgeprune.latency import Profile
from edgeprune.latency.check import replay_check
from edgeprune.paths import shipped_dir
from edgeprune.targets import load_target

warnings.simplefilter("ignore")  # the shipped profile's version note
HERE = Path(__file__).parent
PROFILES = {"shipped": shipped_dir("profiles") / "cpu-ort--amd-epyc-2c.json",
            "re-measured": HERE / "cpu-ort--amd-epyc-2c.json"}  # fmt: skip

target = load_target("cpu-ort")
checks = json.loads((HERE / "check.json").read_text())
profiles = {label: Profile.load(path) for label, path in PROFILES.items()}
rows = [{"profile": label, "model": c["model"], "median_abs_speedup_error_pct": r["median_abs_speedup_error_pct"],
         "max_abs_speedup_error_pct": r["max_abs_speedup_error_pct"]}
        for label, profile in profiles.items() for c in checks for r in [replay_check(profile, target, c)]]
rows += [{"profile": "pass 2 against pass 1", "model": c["model"],
          "median_abs_speedup_error_pct": c["repeat_speedup_median_abs_pct"],
          "max_abs_speedup_error_pct": c["repeat_speedup_max_abs_pct"]} for c in checks]  # fmt: skip
(HERE / "replay.json").write_text(json.dumps(rows, indent=1) + "\n")
for r in rows:
    print(f"{r['profile']:>22} {r['model']:<15} {r['median_abs_speedup_error_pct']:5.1f} / "
          f"{r['max_abs_speedup_error_pct']:5.1f} %")
