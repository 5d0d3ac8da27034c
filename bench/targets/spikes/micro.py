"""Time single widths of cpu-openvino's (or TARGET's) 3x3 conv table at 16x16 in five alternating rounds, each
with the profile's micro-model timing: how the stored spikes of that table run when timed again.

    python bench/targets/spikes/micro.py TARGET CIN:COUT ...
(2026-12-06: at 20:13 UTC with 32:32 32:8 32:16 32:4 28:8 32:12 4:32 8:32 16:4 20:4 16:8, and between 20:24 and
20:27 UTC with 32:4 32:6 32:8 32:10 32:12 32:14 28:8 32:32; the output is quoted in docs/benchmarks/targets.md)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import warnings
from pathlib import Path

from edgeprune.latency.layers import Geometry
from edgeprune.latency.tables import _time_layer
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
target = load_target(sys.argv[1])
g = Geometry.from_key("conv|b1|16x16|k3|s1|gw0|fp32")
points = [tuple(int(v) for v in arg.split(":")) for arg in sys.argv[2:]]
times: dict[tuple, list[float]] = {p: [] for p in points}
with tempfile.TemporaryDirectory() as tmp:
    for _ in range(5):
        for p in points:
            times[p].append(_time_layer(target, g, *p, Path(tmp))[0])
for p, ms in times.items():
    print(p, f"{statistics.median(ms):.4f}", [round(v, 4) for v in ms])
