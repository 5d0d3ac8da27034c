"""Refit a profile's calibrations from the end-to-end points it stores, with the current calibration fit
(:mod:`edgeprune.latency.calibration`): no timing, the lookup and in-network fits kept, as
``edgeprune profile fit TARGET calibration --stored`` does for the models named. ``--line``: every model's
plain line (scale x layer tables + offset), whatever form the fit would choose: the tables alone then rank
the planner's cuts (a research comparison, not offered by the CLI).

    python tools/refit_calibration.py PROFILE --out NEW_PROFILE [--line]
"""

from __future__ import annotations

import argparse

from edgeprune.latency.calibration import describe, refit_profile
from edgeprune.latency.profile import Profile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--out", required=True)
    ap.add_argument("--line", action="store_true", help="fit every model's plain line (tables only)")
    args = ap.parse_args()
    before = Profile.load(args.profile)
    after = refit_profile(before, line=args.line)
    for name, cal in after.calibration.items():
        print(f"{name}: {describe(before.calibration[name])} -> {describe(cal)}")
    after.save(args.out)


if __name__ == "__main__":
    main()
