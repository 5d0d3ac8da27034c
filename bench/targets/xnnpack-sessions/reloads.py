"""One lowering each of dense MobileNet-V2 and its uniform-0.75 variant on cpu-xnnpack, then their .pte files loaded
afresh twelve times, each pair of loaded programs timed together in interleaved rounds: whether a slow session
comes from the lowering or from loading. Prints the variant's speedup over dense per load.

    python bench/targets/xnnpack-sessions/reloads.py
"""

import time

import numpy as np
from common import setup  # beside this file

from edgeprune.backends import prepare_runner, time_runners
from edgeprune.backends.executorch import ExecutorchRunner, load_method

t, m, shape, v = setup()
x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
lowered = {"dense": prepare_runner(t, m, shape), "variant": prepare_runner(t, v["uniform-0.75"], shape)}
for i in range(12):
    loaded = {k: ExecutorchRunner(load_method(t, r.model_path), t.threads, None, r.model_path, r.delegation, None)
              for k, r in lowered.items()}  # fmt: skip
    ms = time_runners(loaded, x, t, reference="dense").paired_ms()
    print(f"{time.strftime('%H:%M:%S')} load {i:2d}: dense {ms['dense']:.3f} ms, variant {ms['variant']:.3f} ms, "
          f"speedup {ms['dense'] / ms['variant']:.3f}x", flush=True)
    del loaded
