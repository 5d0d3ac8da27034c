"""Side by side: each stored check predicted by a profile before and after its calibration was refitted with the
MACs form (the replay tables run.sh writes under bench/targets/status/). Prints markdown rows of the checks
whose prediction moved, and a count of those that did not.

    python bench/targets/macs/compare.py BEFORE AFTER [TARGET]     (names of status/*.json, e.g. macs-before)
"""

import json
import sys
from pathlib import Path

STATUS = Path(__file__).parents[1] / "status"
before, after = (json.loads((STATUS / f"{n}.json").read_text()) for n in sys.argv[1:3])
only = sys.argv[3] if len(sys.argv) > 3 else None
print("| target | model | check (committed, UTC) | before: median / max | refitted: median / max | pass to pass |")
print("|---|---|---|---:|---:|---:|")
same = 0
for b, a in zip(before, after):
    assert (b["check"], b["model"]) == (a["check"], a["model"])
    if only and b["target"] != only:
        continue
    if abs(b["shipped_median_pct"] - a["shipped_median_pct"]) < 0.05 and not only:
        same += 1
        continue
    print(f"| `{b['target']}` | {b['model']} | `{b['check']}` ({b['committed']}) | {b['shipped_median_pct']:.1f} / "
          f"{b['shipped_max_pct']:.1f} % | {a['shipped_median_pct']:.1f} / {a['shipped_max_pct']:.1f} % | "
          f"{b['pass_to_pass_median_pct']:.1f} % |")
print(f"\n{same} other (target, model, check) rows unchanged.")
