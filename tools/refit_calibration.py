"""Refit a profile's calibrations from the end-to-end points it stores, with the current calibration fit
(:mod:`edgeprune.latency.calibration`): no timing, the lookup and in-network fits kept. For a profile whose
lines were fitted before the activation term existed. ``--line``: every model's plain line (scale x layer
tables + offset), whatever form the fit would choose: the tables alone then rank the planner's cuts.

    python tools/refit_calibration.py PROFILE --out NEW_PROFILE [--line]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from edgeprune.latency.calibration import describe, fit_line, refit_stored
from edgeprune.latency.profile import Profile


def refit(profile: Profile, line: bool = False) -> Profile:
    fitted = {name: refit_stored(profile, name) for name in profile.calibration}
    if line:  # the same refreshed points, fitted as a plain line
        fitted = {name: fit_line(cal.points) for name, cal in fitted.items()}
    return replace(profile, calibration=fitted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--out", required=True)
    ap.add_argument("--line", action="store_true", help="fit every model's plain line (tables only)")
    args = ap.parse_args()
    before = Profile.load(args.profile)
    after = refit(before, args.line)
    for name, cal in after.calibration.items():
        print(f"{name}: {describe(before.calibration[name])} -> {describe(cal)}")
    after.save(args.out)


if __name__ == "__main__":
    main()
