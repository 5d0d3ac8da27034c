"""Latency predictor error on random pruned variants, measured end to end on the profile's target.

    python tools/bench_predictor.py --profile profiles/cpu-ort--<device>.json --plans 20 --passes 2 \
        --model cifar_resnet56 --model resnet50 --model mobilenet_v2 --out bench/predictor.json

Plans are drawn with --seed (default 0), independent of the profile's calibration plans (seed 12345):
the error is measured on variants the predictor never saw. Each variant is timed in alternating rounds with the dense
model, so the error is reported twice: in ms (which carries the machine's drift since profiling) and in
speedup over dense (what the planner relies on). With ``--passes 2`` every pair is timed again, and the
pass-to-pass change is the measurement's own repeatability, a floor under any predictor's error.

``--measured FILE`` takes the end-to-end times from an earlier run of this script (same seed, same plans)
instead of measuring again, so two profiles are compared on the very same measurements.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from edgeprune.atomic import atomic_write_text
from edgeprune.latency import Profile
from edgeprune.latency.check import check_profile, describe_check, replay_check
from edgeprune.targets import load_target, target_from_dict


def reuse_measured(profile: Profile, target, name: str, earlier: dict, seed: int) -> dict:
    """The check's report for ``name`` with this profile's predictions and an earlier run's measurements."""
    old = earlier["results"][name]["plans"]
    if "dense_ms" not in old[0]:
        raise SystemExit(f"the earlier {name} plans were timed without the dense model beside them: measure again")
    return replay_check(profile, target, {"model": name, "plans": old}, seed, earlier["meta"].get("branches", 0.0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--plans", type=int, default=20)
    ap.add_argument("--passes", type=int, default=1, help="time every plan this many times (repeatability)")
    ap.add_argument("--out", default="bench/predictor.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--measured", help="reuse the measured times of an earlier result file (same seed)")
    ap.add_argument("--branches", type=float, default=0.0,
                    help="chance that a plan removes each residual branch it may remove (0: channel plans only)")
    args = ap.parse_args()
    earlier = json.loads(Path(args.measured).read_text()) if args.measured else None
    if earlier and earlier["meta"]["seed"] != args.seed:
        ap.error(f"{args.measured} was measured with seed {earlier['meta']['seed']}, not {args.seed}")
    profile = Profile.load(args.profile, strict=True)
    spec = {k: v for k, v in profile.target.items() if k not in ("name", "source")}
    # what is predicted comes from the profile (threads, batch, input); how to time it from today's target file
    timing = {k: getattr(load_target(profile.target["name"]), k) for k in ("warmup", "repeats", "rounds")}
    target = replace(target_from_dict(profile.target["name"], spec), **timing)
    results = {}
    for name in args.model:
        if earlier:
            report = reuse_measured(profile, target, name, earlier, args.seed)
        else:
            report = check_profile(profile, target, name, args.plans, args.seed, args.passes, args.branches)
        rows = report.pop("plans")
        results[name] = {"summary": {k: v for k, v in report.items() if k != "model"}, "plans": rows}
        print(describe_check({**report, "plans": rows}), flush=True)
    meta = {"profile": args.profile, "device": profile.device, "target": profile.target["name"], "seed": args.seed,
            "lookup": {"channel_block": profile.channel_block, "use_scan": profile.use_scan},
            "misalign": profile.misalign, "lookups": profile.lookups, "measured_in": args.measured or "this run",
            "passes": args.passes,
            "plans_per_model": len(rows), "timing": {**timing, "how": "each plan beside a dense session, in "
                                                      "alternating rounds; fresh sessions"},
            "plan_sampler": "keep U(0.3, 1.0) of every prunable group, random channels", "branches": args.branches,
            }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({"meta": meta, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
