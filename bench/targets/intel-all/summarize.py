"""The predictor on every CPU target's fresh profile of this VM (bench/targets/intel-all/run.sh), against the
measurement's own pass-to-pass spread; the shipped (AMD EPYC) profile replayed on the same timings beside it.
No timing. Writes summary.json and summary.md in FOLDER (run.sh's D; default: beside this file).

    python bench/targets/intel-all/summarize.py [FOLDER]
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from edgeprune.latency import Profile
from edgeprune.latency.calibration import describe
from edgeprune.latency.check import replay_check
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
ROOT = Path(__file__).parents[3]
HERE = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
TARGETS = ["cpu-ort", "cpu-ort-int8", "cpu-openvino", "cpu-openvino-int8", "cpu-xnnpack", "cpu-xnnpack-int8"]

rows = []
for name in TARGETS:
    check = HERE / f"check-{name}.json"
    if not check.exists():
        continue
    target = load_target(name)
    own = Profile.load(next(HERE.glob(f"{name}--*.json")), strict=False)  # named after the CPU that measured it
    shipped = Profile.load(ROOT / f"edgeprune/resources/profiles/{name}--amd-epyc-2c.json", strict=False)
    for report in json.loads(check.read_text()):
        model = report["model"]
        row = {"target": name, "model": model, "own_median_pct": report["median_abs_speedup_error_pct"],
               "own_max_pct": report["max_abs_speedup_error_pct"],
               "pass_median_pct": report["repeat_speedup_median_abs_pct"],
               "pass_max_pct": report["repeat_speedup_max_abs_pct"],
               "measured": [p["measured_speedup"] for p in report["plans"]],
               "calibration": describe(own.calibration[model]), "lookup": own.lookup_for(model)[:2]}  # fmt: skip
        if model in shipped.calibration:
            again = replay_check(shipped, target, report)
            row["shipped_median_pct"] = again["median_abs_speedup_error_pct"]
        for p in report.get("planned", []):
            row["planned"] = {k: p[k] for k in ("plan", "predicted_speedup", "measured_speedup", "speedup_error_pct")}
            first, second = (d / m for m, d in zip(p["passes_ms"], p["passes_dense_ms"]))
            row["planned"]["pass_to_pass_pct"] = abs(100 * (second / first - 1))
        rows.append(row)
(HERE / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
lines = ["| target | model | random plans ran (× dense) | own profile: median / max \\|error\\| | pass to pass: "
         "median / max | within? | shipped AMD profile, same timings: median | planner's 0.5x MACs plan: "
         "predicted / measured (error; its pass to pass) |", "|---|---|---|---:|---:|---|---:|---:|"]  # fmt: skip
for r in rows:
    ran = f"{min(r['measured']):.2f}–{max(r['measured']):.2f}"
    within = "**yes**" if r["own_median_pct"] <= r["pass_median_pct"] else "no"
    amd = f"{r['shipped_median_pct']:.1f} %" if "shipped_median_pct" in r else "—"
    p = r.get("planned")
    plan = (f"{p['predicted_speedup']:.2f}× / {p['measured_speedup']:.2f}× ({p['speedup_error_pct']:+.1f} %; "
            f"{p['pass_to_pass_pct']:.1f} %)"
            if p else "—")
    lines.append(f"| `{r['target']}` | {r['model']} | {ran} | {r['own_median_pct']:.1f} / {r['own_max_pct']:.1f} % | "
                 f"{r['pass_median_pct']:.1f} / {r['pass_max_pct']:.1f} % | {within} | {amd} | {plan} |")
lines += ["", "Calibration chosen per model (form, then lookup: channel block, scan):", ""]
lines += [f"- `{r['target']}` {r['model']}: {r['calibration']}; {r['lookup']}" for r in rows]
(HERE / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
