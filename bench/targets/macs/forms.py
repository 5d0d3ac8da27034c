"""Each calibration form's leave-one-out error on a profile's stored runs (the fit's own rule, ``_loo_error``:
inf where a fold gives a negative weight), and the random plans of a stored check predicted by the profile
refitted with and without the 10 % gain rule. No timing.

    python bench/targets/macs/forms.py TARGET PROFILE CHECK MODEL [--unpaired-too]

``--unpaired-too``: score the forms even where the runs were not timed beside the dense model (the fit itself
then keeps the plain line).
"""

import json
import sys
import warnings
from dataclasses import replace

from edgeprune.latency import Profile, calibration
from edgeprune.latency.calibration import FORMS, is_planned, point_features, refit_profile
from edgeprune.latency.check import replay_check
from edgeprune.latency.model import LatencyModel
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
target_name, path, check, name = sys.argv[1:5]
profile, target = Profile.load(path, strict=False), load_target(target_name)
model = LatencyModel(profile, name)
points = [{**p, "layers_ms": model.layers_ms(ls), **point_features(ls)}
          for p in profile.calibration[name].points for ls in [profile.model_layers(name, p)]]  # fmt: skip
chooses = [p for p in points if not is_planned(p)]
paired = all("dense_ms" in p for p in points)
print(f"{target_name} {name}: {len(chooses)} runs choose the form; paired: {'yes' if paired else 'no'}")
for form in FORMS:
    print(f"  {form:12s} leave-one-out RMS error {100 * calibration._loo_error(chooses, form):.1f} %")
report = next(r for r in json.loads(open(check).read()) if r["model"] == name)
source = profile
if "--unpaired-too" in sys.argv and not paired:  # as if the runs were paired
    stamped = [{**p, "dense_ms": p.get("dense_ms", p["measured_ms"])} for p in profile.calibration[name].points]
    source = replace(profile, calibration={**profile.calibration, name: replace(profile.calibration[name],
                                                                              points=stamped)})  # fmt: skip
for gain in (calibration.GAIN_NEEDED, 1.0):
    calibration.GAIN_NEEDED = gain
    fitted = refit_profile(source, [name])
    r = replay_check(fitted, target, report)
    print(f"  gain needed {gain}: {calibration.describe(fitted.calibration[name])}; check's random plans "
          f"median {r['median_abs_speedup_error_pct']:.1f} %")
