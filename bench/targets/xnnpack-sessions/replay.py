"""The settled check of MobileNet-V2 on cpu-xnnpack (check-mobilenet_v2.json) predicted by the committed profile and
by the one whose calibration was settled (no timing).

    python bench/targets/xnnpack-sessions/replay.py
"""

import json
import warnings
from pathlib import Path

from edgeprune.latency import Profile
from edgeprune.latency.check import replay_check
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
HERE = Path(__file__).parent
report = json.loads((HERE / "check-mobilenet_v2.json").read_text())[0]
for label, path in (("committed", HERE.parent / "intel-all" / "cpu-xnnpack--amd-epyc-2c.json"),
                    ("settled", HERE / "cpu-xnnpack--amd-epyc-2c-settled.json")):  # fmt: skip
    r = replay_check(Profile.load(path, strict=False), load_target("cpu-xnnpack"), report)
    print(f"{label}: |error| median {r['median_abs_speedup_error_pct']:.1f} %, "
          f"max {r['max_abs_speedup_error_pct']:.1f} %; "
          f"pass to pass median {r['repeat_speedup_median_abs_pct']:.1f} %")
