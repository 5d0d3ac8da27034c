"""Dense MobileNet-V2 and its uniform-0.75 variant on cpu-xnnpack, each lowered six times in one process and each
lowering timed twice (the same session): whether a slow run belongs to the session or passes. Prints ms.

    python bench/targets/xnnpack-sessions/lowerings.py
"""

import time
import warnings

import numpy as np

from edgeprune.backends import measure_latency, prepare_runner
from edgeprune.latency.profiler import build_model, model_input_shape
from edgeprune.latency.variants import calibration_variants
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
t = load_target("cpu-xnnpack")
m = build_model("mobilenet_v2", t)
shape = model_input_shape("mobilenet_v2", t)
v = dict(calibration_variants(m, "mobilenet_v2", shape, align=16))
x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
for i in range(6):
    for label, mod in (("dense", m), ("uniform-0.75", v["uniform-0.75"])):
        r = prepare_runner(t, mod, shape)
        a, b = measure_latency(r, x, t).median_ms, measure_latency(r, x, t).median_ms
        print(f"{time.strftime('%H:%M:%S')} lowering {i} {label:13s} {a:.3f} ms, again {b:.3f} ms", flush=True)
        del r
