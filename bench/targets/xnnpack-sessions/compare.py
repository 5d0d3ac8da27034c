"""MobileNet-V2's calibration points on cpu-xnnpack in two profiles (the committed one, and one whose calibration was
timed again), point by point, and each profile's prediction of the committed check's random plans (no timing).

    python bench/targets/xnnpack-sessions/compare.py OTHER_PROFILE.json
"""

import json
import sys
import warnings
from pathlib import Path

from edgeprune.latency import Profile
from edgeprune.latency.calibration import describe
from edgeprune.latency.check import replay_check
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
HERE = Path(__file__).parent
old = Profile.load(HERE.parent / "intel-all" / "cpu-xnnpack--amd-epyc-2c.json", strict=False)
new = Profile.load(Path(sys.argv[1]), strict=False)
checks = json.loads((HERE.parent / "intel-all" / "check-cpu-xnnpack.json").read_text())
report = next(r for r in checks if r["model"] == "mobilenet_v2")
for p, q in zip(old.calibration["mobilenet_v2"].points, new.calibration["mobilenet_v2"].points):
    change = 100 * (q["measured_ratio"] / p["measured_ratio"] - 1)
    print(f"{p['label']:14s} committed {1 / p['measured_ratio']:.3f}x  again {1 / q['measured_ratio']:.3f}x  "
          f"({change:+.1f} % ms) {[round(r, 3) for r in q.get('ratios', [])]}")
for name, prof in (("committed", old), ("again", new)):
    r = replay_check(prof, load_target("cpu-xnnpack"), report)
    pairs = [f"{x['predicted_speedup']:.2f}/{x['measured_speedup']:.2f}" for x in r["plans"]]
    print(f"{name}: lookup {prof.lookup_for('mobilenet_v2')}, {describe(prof.calibration['mobilenet_v2'])}; random "
          f"plans |error| median {r['median_abs_speedup_error_pct']:.1f} %, "
          f"max {r['max_abs_speedup_error_pct']:.1f} %; "
          f"predicted/measured {pairs}")
