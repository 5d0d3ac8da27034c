"""The same three MobileNet-V2 calibration variants on cpu-xnnpack, each beside the dense model, in three calls of
``measure_variants`` (each its own process) of two passes (each pass lowers every program afresh): how far one
run's speedup moves from one session to the next. Prints each pass's speedups (blocked-3, random-2, uniform-0.75).

    python bench/targets/xnnpack-sessions/repeat.py
"""

import time

from common import setup  # beside this file

from edgeprune.latency.runs import measure_variants

t, m, shape, v = setup()
for call in range(3):
    runs = [m, v["blocked-3"], v["random-2"], v["uniform-0.75"]]
    out = measure_variants(t, runs, shape, passes=2, desc=f"call {call}")
    print(time.strftime("%H:%M:%S"), "call", call, [[f"{d / x:.3f}x" for d, x in p] for p in out], flush=True)
