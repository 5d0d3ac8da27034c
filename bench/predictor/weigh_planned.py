"""How much would weighing the planner's own runs more help? (no timing)

The calibration fits its line with the planner's runs (``planned-*``) weighing as much together as the other
runs together (`point_weights`). This refits every stored scored run (`score_planned.py`'s JSON files) with
the planned runs weighing W times that, optionally with the dense run weighing as much as they do (the line
then passes through the dense model and the planner's plans, nearly ignoring the random ones), and scores the
check's random and planned plans as `score_planned.py` does.

    python bench/predictor/weigh_planned.py --out weigh-planned SCORE.json [SCORE.json ...]

Writes NAME.json and NAME.md beside this script.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
from score_planned import _planner, _variants, refit, score

import edgeprune.latency.calibration as calibration
from edgeprune.atomic import atomic_write_text
from edgeprune.latency import Profile
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
HERE = Path(__file__).parent
SETTINGS = [(1.0, False), (3.0, False), (10.0, False), (10.0, True), (1000.0, True)]  # (W, dense anchored)


def weights(w: float, anchored: bool, default=calibration.point_weights):
    """`point_weights` with the planned runs (and, ``anchored``, the dense run) at ``w`` times its planned weight."""

    def point_weights(points: list[dict]) -> np.ndarray:
        base = default(points)
        planned = np.array([calibration.is_planned(p) for p in points])
        if not planned.any() or planned.all():
            return base
        heavy = planned | (anchored & np.array([p.get("label") == "uniform-0.0" for p in points]))
        return np.where(heavy, w * base[planned][0], base)

    return point_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scores", nargs="+", type=Path)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows, default = [], calibration.point_weights
    for path in args.scores:
        stored = json.loads(path.read_text())
        fitted = Profile.load(Path(stored["profile"]), strict=False)
        target = load_target(fitted.target["name"])
        for report in json.loads(Path(stored["check"]).read_text()):
            name, n = report["model"], len(report["plans"])
            budgets = [p["plan"].rsplit(" ", 1)[-1] for p in report["planned"]]
            _, layers, _ = _variants(name, target, n, planned=_planner(target)(fitted, budgets))
            measured = [p["measured_speedup"] for p in report["plans"] + report["planned"]]
            scored = {}
            try:
                for w, anchored in SETTINGS:
                    calibration.point_weights = weights(w, anchored)
                    s = score(refit(fitted), name, layers, measured, n)
                    scored[f"{w:g}{' +dense' if anchored else ''}"] = {
                        "random": s["random_median_abs"], "planned": s["errors"][n:]}  # fmt: skip
            finally:
                calibration.point_weights = default
            rows.append({"target": target.name, "model": name, "budgets": budgets, "scored": scored,
                         "repeat": report.get("repeat_speedup_median_abs_pct"), "from": str(path)})  # fmt: skip
    atomic_write_text(HERE / f"{args.out}.json", json.dumps(rows, indent=1))
    atomic_write_text(HERE / f"{args.out}.md", markdown(rows))
    print(markdown(rows))


def markdown(rows: list[dict]) -> str:
    keys = list(rows[0]["scored"])
    lines = ["`python bench/predictor/weigh_planned.py`: random plans' median |error| / the planned plans' errors "
             "(at the budgets named), with the planner's runs weighing W times the default.", "",
             "| target, model | pass to pass | " + " | ".join(f"W = {k}" for k in keys) + " |",
             "|---|---:|" + "---|" * len(keys)]  # fmt: skip
    for r in rows:
        cells = [f"{s['random']:.1f} % / " + " ".join(f"{e:+.1f}" for e in s["planned"]) for s in r["scored"].values()]
        lines.append(f"| {r['target']}, {r['model']} ({' '.join(r['budgets'])}) | {r['repeat'] or 0:.1f} % | "
                     + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
