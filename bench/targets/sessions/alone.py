"""One dense MobileNet-V2 (random init, 224²) alone in its process, timed ROUNDS times in a row (each timing the
target's warm-up, repeats and rounds, about half a second) on each target named: whether one compiled model's
speed moves over seconds with nothing beside it. Prints the median ms of each timing.

    python bench/targets/sessions/alone.py [--timings 24] TARGET ...
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import setup  # beside this file

from edgeprune.backends import measure_latency, prepare_runner
from edgeprune.latency.runs import export_for

p = argparse.ArgumentParser()
p.add_argument("targets", nargs="+")
p.add_argument("--timings", type=int, default=24)
args = p.parse_args()
for name in args.targets:
    t, m, shape = setup(name)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        runner = prepare_runner(t, export_for(t, m, shape, Path(tmp) / "dense.onnx"), shape)
        start = time.strftime("%H:%M:%S")
        ms = [measure_latency(runner, x, t).median_ms for _ in range(args.timings)]
    print(f"{name} ({start}-{time.strftime('%H:%M:%S')} UTC), ms: " + " ".join(f"{v:.2f}" for v in ms), flush=True)
