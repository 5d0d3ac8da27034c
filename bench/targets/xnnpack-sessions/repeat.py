"""The same three MobileNet-V2 calibration variants on cpu-xnnpack, each beside the dense model, in three calls of
``measure_variants`` (each its own process) of two passes (each pass lowers every program afresh): how far one
run's speedup moves from one session to the next. Prints each pass's speedups (blocked-3, random-2, uniform-0.75).

    python bench/targets/xnnpack-sessions/repeat.py
"""

import time
import warnings

from edgeprune.latency.profiler import build_model, model_input_shape
from edgeprune.latency.runs import measure_variants
from edgeprune.latency.variants import calibration_variants
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
t = load_target("cpu-xnnpack")
m = build_model("mobilenet_v2", t)
shape = model_input_shape("mobilenet_v2", t)
v = dict(calibration_variants(m, "mobilenet_v2", shape, align=16))
for call in range(3):
    runs = [m, v["blocked-3"], v["random-2"], v["uniform-0.75"]]
    out = measure_variants(t, runs, shape, passes=2, desc=f"call {call}")
    print(time.strftime("%H:%M:%S"), "call", call, [[f"{d / x:.3f}x" for d, x in p] for p in out], flush=True)
