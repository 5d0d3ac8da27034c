"""Refit a profile's calibrations from the end-to-end points it stores, with the current calibration fit
(:mod:`edgeprune.latency.calibration`): no timing, the lookup and in-network fits kept. For a profile whose
lines were fitted before the activation term existed.

    python tools/refit_calibration.py PROFILE --out NEW_PROFILE
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from edgeprune.latency.calibration import activations_mb, fit_calibration
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import Profile


def refit(profile: Profile) -> Profile:
    fitted = {}
    for name, cal in profile.calibration.items():
        plain = replace(profile, calibration={})  # layer ms as the tables give them, before any line
        model = LatencyModel(replace(plain, width_scale=profile.width_scale), name)
        points = [{**p, "layers_ms": model.layers_ms(ls), "act_mb": activations_mb(ls)}
                  for p in cal.points for ls in [profile.model_layers(name, p)]]  # fmt: skip
        fitted[name] = fit_calibration(points)
    return replace(profile, calibration=fitted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    before = Profile.load(args.profile)
    after = refit(before)
    for name, cal in after.calibration.items():
        old = before.calibration[name]
        form = ("layers" if cal.tables else "") + (" + activations" if cal.ms_per_mb else "")
        print(f"{name}: {old.scale:.3f} x layers {old.offset_ms:+.3f} ms -> {form.strip(' +')}: scale "
              f"{cal.scale:.3f}, {cal.ms_per_mb:.3f} ms/MB, offset {cal.offset_ms:+.3f} ms")
    after.save(args.out)


if __name__ == "__main__":
    main()
