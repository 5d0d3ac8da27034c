"""Dense MobileNet-V2 and its uniform-0.75 variant on cpu-xnnpack, each lowered six times in one process and each
lowering timed twice (the same session): whether a slow run belongs to the session or passes. Prints ms.

    python bench/targets/xnnpack-sessions/lowerings.py
"""

import time

import numpy as np
from common import setup  # beside this file

from edgeprune.backends import measure_latency, prepare_runner

t, m, shape, v = setup()
x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
for i in range(6):
    for label, mod in (("dense", m), ("uniform-0.75", v["uniform-0.75"])):
        r = prepare_runner(t, mod, shape)
        a, b = measure_latency(r, x, t).median_ms, measure_latency(r, x, t).median_ms
        print(f"{time.strftime('%H:%M:%S')} lowering {i} {label:13s} {a:.3f} ms, again {b:.3f} ms", flush=True)
        del r
