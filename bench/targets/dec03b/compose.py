"""The shipped profile with a new model's tables and line added (or a model's refitted: its line and lookup
replaced), every other model it had kept as it was (the same rule as `profile measure` into an existing profile),
and a check that their predictions did not move.

    python bench/targets/dec03b/compose.py TARGET MEASURED_PROFILE NEW_MODEL OUT
"""

from __future__ import annotations

import sys
import warnings

from edgeprune.latency import Profile
from edgeprune.latency.check import check_variants, predicted_ms
from edgeprune.latency.profiler import _keep_earlier_models
from edgeprune.paths import shipped_dir
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
target_name, measured, model, out = sys.argv[1:]
shipped = Profile.load(next(shipped_dir("profiles").glob(f"{target_name}--*.json")))
new = _keep_earlier_models(Profile.load(measured), shipped, {model})
for name in sorted(set(shipped.calibration) - {model}):
    _, layers = check_variants(name, load_target(target_name), 5)
    same = predicted_ms(new, name, layers) == predicted_ms(shipped, name, layers)
    print(f"{name}: predictions on 5 random plans {'unchanged' if same else 'CHANGED'}")
    if not same:
        sys.exit(1)
new.save(out)
print(f"wrote {out}: {sorted(new.calibration)}")
