"""A profile calibrated on the planner's own plans, scored against the same profile without them (no timing).

`edgeprune profile measure` / `profile fit ... calibration` also time the latency-ranked plan the planner makes
at a few MACs budgets (points labelled ``planned-B``). This takes a `profile check --planned-macs ... --json`
report made with such a profile, rebuilds its random and planned plans exactly (the check's seed, the same
planner), and predicts them with

- the profile as the check ran it (its ``planned-*`` points included),
- the same points refitted by the code as it stands (lookup and calibration),
- the same profile refitted on its other points only (what the code before fitted on the same runs),
- any further ``--profile`` files,

against the speedups the check measured.

    python bench/predictor/score_planned.py PROFILE CHECK.json [--profile NAME=PATH ...] --out NAME

Writes NAME.json and NAME.md beside this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings
from pathlib import Path

from edgeprune.atomic import atomic_write_text
from edgeprune.cli.profile import _planner
from edgeprune.latency import Profile
from edgeprune.latency.calibration import describe, is_planned
from edgeprune.latency.check import _variants, predicted_ms
from edgeprune.latency.profiler import choose_lookup_and_calibrate
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
HERE = Path(__file__).parent


def refit(profile: Profile, planned: bool = True) -> Profile:
    """``profile`` with its lookup and calibration refitted on its stored points (``planned``: with the planned
    ones, else without them)."""
    points = {n: [p for p in c.points if planned or not is_planned(p)]
              for n, c in profile.calibration.items()}  # fmt: skip
    return choose_lookup_and_calibrate(profile, points)


def score(profile: Profile, name: str, layers: list, measured: list[float], n_random: int) -> dict:
    """Each plan's predicted speedup and its error against ``measured`` (index 0 of ``layers``: dense)."""
    ms = predicted_ms(profile, name, layers)
    predicted = [ms[0] / m for m in ms[1:]]
    errors = [100 * (p / m - 1) for p, m in zip(predicted, measured)]
    return {"calibration": describe(profile.calibration[name]), "predicted": predicted, "errors": errors,
            "random_median_abs": statistics.median(abs(e) for e in errors[:n_random])}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("check", type=Path)
    ap.add_argument("--profile", dest="others", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    fitted = Profile.load(args.profile, strict=False)
    target = load_target(fitted.target["name"])
    profiles = {"as the check ran it": fitted, "refitted by the code as it stands": refit(fitted),
                "refitted without the planned points": refit(fitted, planned=False)}
    profiles.update({k: Profile.load(Path(v), strict=False) for k, v in (o.split("=", 1) for o in args.others)})
    rows = []
    for report in json.loads(args.check.read_text()):
        name, n = report["model"], len(report["plans"])
        budgets = [p["plan"].rsplit(" ", 1)[-1] for p in report["planned"]]
        _, layers, labels = _variants(name, target, n, planned=_planner(target)(fitted, budgets))
        measured = [p["measured_speedup"] for p in report["plans"] + report["planned"]]
        scores = {k: score(p, name, layers, measured, n) for k, p in profiles.items()}
        stored = [p["predicted_speedup"] for p in report["plans"] + report["planned"]]
        assert max(abs(a / b - 1) for a, b in zip(scores["as the check ran it"]["predicted"], stored)) < 1e-9, (
            "the plans were not rebuilt as the check made them"
        )
        # the planned runs change what a plan is priced at, not the plan: with and without them, the same widths
        planned_by = [_variants(name, target, 0, planned=_planner(target)(profiles[k], budgets))[1]
                      for k in ("refitted by the code as it stands", "refitted without the planned points")]
        same = [[(x.cin, x.cout) for x in ls] for ls in planned_by[0]] == [
            [(x.cin, x.cout) for x in ls] for ls in planned_by[1]]  # fmt: skip
        rows.append({"model": name, "labels": labels, "measured": measured, "n_random": n, "scores": scores,
                     "same_plans_with_and_without_planned_points": same,
                     "repeat_speedup_median_abs_pct": report.get("repeat_speedup_median_abs_pct")})  # fmt: skip
    out = {"profile": str(args.profile), "check": str(args.check), "rows": rows}
    atomic_write_text(HERE / f"{args.out}.json", json.dumps(out, indent=1))
    atomic_write_text(HERE / f"{args.out}.md", markdown(out))
    print(markdown(out))


def markdown(out: dict) -> str:
    lines = [
        f"Profile `{out['profile']}`, measurements `{out['check']}` (`python bench/predictor/score_planned.py`).",
        "",
    ]
    for r in out["rows"]:
        planned = [lab.rsplit(" ", 1)[-1] for lab in r["labels"]]
        lines += [f"### {r['model']}", "", f"Random plans: {r['n_random']}; pass to pass, speedup median "
                  f"{r['repeat_speedup_median_abs_pct']:.1f} %. Planned plans measured: "
                  + ", ".join(f"{b} {m:.2f}x" for b, m in zip(planned, r["measured"][r["n_random"]:])), "",
                  "Refitted with and without the planned points, the planner makes "
                  + ("the same plans." if r["same_plans_with_and_without_planned_points"] else "DIFFERENT plans."), "",
                  "| predictor | calibration | random plans: median abs. error | "
                  + " | ".join(f"planned {b}: predicted (error)" for b in planned) + " |",
                  "|---|---|---:|" + "---:|" * len(planned)]  # fmt: skip
        for k, s in r["scores"].items():
            cells = [
                f"{p:.2f}x ({e:+.1f} %)" for p, e in zip(s["predicted"][r["n_random"] :], s["errors"][r["n_random"] :])
            ]
            lines.append(f"| {k} | {s['calibration']} | {s['random_median_abs']:.1f} % | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
