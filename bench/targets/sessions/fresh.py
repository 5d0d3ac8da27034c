"""Do onnxruntime and OpenVINO sessions vary as ExecuTorch's do? The same three MobileNet-V2 calibration variants
(random init, 224²), each timed beside the dense model, in PASSES passes of fresh sessions built from the same
files (``measure_variants``), on each target named. Prints each pass's speedups and, per target, how many runs
lie more than 10 % from the median of the rest of their column (on cpu-xnnpack 3 of 18 did:
bench/targets/xnnpack-sessions/results.md).

    python bench/targets/sessions/fresh.py [--passes 6] TARGET ...
"""

import argparse
import statistics
import time

from common import setup, variants  # beside this file

from edgeprune.latency.runs import measure_variants

LABELS = ["blocked-3", "random-2", "uniform-0.75"]

p = argparse.ArgumentParser()
p.add_argument("targets", nargs="+")
p.add_argument("--passes", type=int, default=6)
args = p.parse_args()
for name in args.targets:
    t, m, shape = setup(name)
    v = variants(m, shape)
    start = time.strftime("%H:%M:%S")
    out = measure_variants(t, [m] + [v[k] for k in LABELS], shape, passes=args.passes, desc=name)
    speed = [[d / x for d, x in row] for row in out]
    print(f"{name} ({start}-{time.strftime('%H:%M:%S')} UTC), speedup over dense per pass: {', '.join(LABELS)}")
    for i, row in enumerate(speed):
        print(f"  pass {i + 1}: " + "  ".join(f"{s:.3f}x" for s in row))
    off = []
    for j, label in enumerate(LABELS):
        col = [row[j] for row in speed]
        for i, s in enumerate(col):
            rest = statistics.median(col[:i] + col[i + 1:])
            if abs(s / rest - 1) > 0.10:
                off.append(f"{label} pass {i + 1}: {s / rest - 1:+.1%}")
        spread = (max(col) - min(col)) / statistics.median(col)
        print(f"  {label}: max-min {spread:.1%} of the median")
    print(f"  runs over 10 % from the rest of their column: {len(off)} of {len(speed) * len(LABELS)}",
          "; ".join(off), flush=True)
