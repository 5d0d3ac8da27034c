"""Refit a profile's calibrations from the end-to-end points it stores, with the current calibration fit
(:mod:`edgeprune.latency.calibration`): no timing, the lookup and in-network fits kept. For a profile whose
lines were fitted before the activation term existed.

    python tools/refit_calibration.py PROFILE --out NEW_PROFILE
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from edgeprune.latency.calibration import describe, refit_stored
from edgeprune.latency.profile import Profile


def refit(profile: Profile) -> Profile:
    return replace(profile, calibration={name: refit_stored(profile, name) for name in profile.calibration})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    before = Profile.load(args.profile)
    after = refit(before)
    for name, cal in after.calibration.items():
        print(f"{name}: {describe(before.calibration[name])} -> {describe(cal)}")
    after.save(args.out)


if __name__ == "__main__":
    main()
