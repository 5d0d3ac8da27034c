"""Whether a slow run belongs to the session or passes: dense MobileNet-V2 and two calibration variants (random
init, 224²) on TARGET, each pair built into fresh sessions from the same files SESSIONS times in one process, and
each pair of sessions timed twice in interleaved rounds. Prints each variant's speedup over dense per timing
(dense ms : variant ms).

    python bench/targets/sessions/compiles.py TARGET [--sessions 6]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import setup, variants  # beside this file

from edgeprune.backends import prepare_runner, time_runners
from edgeprune.latency.runs import export_for

p = argparse.ArgumentParser()
p.add_argument("target")
p.add_argument("--sessions", type=int, default=6)
args = p.parse_args()
t, m, shape = setup(args.target)
v = variants(m, shape)
x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
print(f"{args.target}: speedup over dense, each session pair timed twice (first / again)")
with tempfile.TemporaryDirectory() as tmp:
    files = {k: export_for(t, mod, shape, Path(tmp) / f"{k}.onnx")
             for k, mod in (("dense", m), ("blocked-3", v["blocked-3"]), ("random-2", v["random-2"]))}
    for i in range(args.sessions):
        row = []
        for label in ("blocked-3", "random-2"):
            runners = {"dense": prepare_runner(t, files["dense"], shape), label: prepare_runner(t, files[label], shape)}
            twice = [time_runners(runners, x, t, reference="dense").paired_ms() for _ in range(2)]
            row.append(f"{label} " + " / ".join(f"{ms['dense'] / ms[label]:.3f}x ({ms['dense']:.2f}:{ms[label]:.2f} ms)"
                                                for ms in twice))
            del runners
        print(f"{time.strftime('%H:%M:%S')} session {i}: " + ",  ".join(row), flush=True)
