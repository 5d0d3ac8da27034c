"""MobileNet-V2 on cpu-xnnpack, the settled profile (no timing): each calibration point's MACs, activations and
tables against its measured and predicted speedup; then the settled check predicted by the same profile refitted
without the planner's own points. Another target's profile and check (a check's MobileNet-V2 report) if given.

    python bench/targets/xnnpack-sessions/insample.py [TARGET PROFILE CHECK]
"""

import json
import sys
import warnings
from pathlib import Path

from edgeprune.latency import Profile
from edgeprune.latency.calibration import activations_mb, is_planned
from edgeprune.latency.check import replay_check
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profiler import choose_lookup_and_calibrate
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
HERE, NAME = Path(__file__).parent, "mobilenet_v2"
TARGET, PROFILE, CHECK = sys.argv[1:4] if len(sys.argv) > 3 else \
    ("cpu-xnnpack", HERE / "cpu-xnnpack--amd-epyc-2c-settled.json", HERE / "check-mobilenet_v2.json")  # fmt: skip
profile = Profile.load(PROFILE, strict=False)
model, points = LatencyModel(profile, NAME), profile.calibration[NAME].points
layers = [profile.model_layers(NAME, p) for p in points]


def macs(ls) -> float:  # MobileNet-V2's convolutions and linear; a depthwise conv reads one input channel
    return sum(x.cout * -(-x.geometry.h // x.geometry.stride) * -(-x.geometry.w // x.geometry.stride)
               * x.geometry.kernel**2 * (1 if x.geometry.group_width else x.cin) for x in ls)  # fmt: skip


dense = layers[0]
print("| point | MACs | activations | tables | measured | predicted |\n|---|---:|---:|---:|---:|---:|")
for p, ls in zip(points, layers):
    print(f"| {p['label']} | {macs(dense) / macs(ls):.2f}x | {activations_mb(dense) / activations_mb(ls):.2f}x | "
          f"{model.layers_ms(dense) / model.layers_ms(ls):.2f}x | {1 / p['measured_ratio']:.2f}x | "
          f"{model.predict(dense).ms / model.predict_pruned(dense, ls).ms:.2f}x |")
report = next(r for r in json.loads(Path(CHECK).read_text()) if r["model"] == NAME)
others = choose_lookup_and_calibrate(profile, {NAME: [p for p in points if not is_planned(p)]})
for label, prof in (("as fitted", profile), ("without the planner's points", others)):
    r = replay_check(prof, load_target(TARGET), report)
    print(f"settled check, {label}: |error| median {r['median_abs_speedup_error_pct']:.1f} %")
