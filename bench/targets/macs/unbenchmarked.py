"""The calibration forms on the sixteen models no other benchmark covered (cpu-ort, 2026-12-04/05, an Intel Xeon;
bench/planner-peer/unbenchmarked/): each set's profile refitted from its stored runs with `edgeprune profile fit
cpu-ort calibration --stored` (no timing), then each set's stored two-pass check predicted again with the profile
as it was and as refitted. Writes unbenchmarked.md beside this file; the refitted profiles go to a temporary folder.

    python bench/targets/macs/unbenchmarked.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from edgeprune.latency import Profile
from edgeprune.latency.check import replay_check
from edgeprune.targets import load_target

warnings.simplefilter("ignore")
HERE = Path(__file__).parent
ROOT = HERE.parents[2]
SETS = ROOT / "bench/planner-peer/unbenchmarked"


def form(cal) -> str:
    if not cal.tables:
        return "activations"
    return "tables" + (" + activations" if cal.ms_per_mb else "") + (" + MACs" if cal.ms_per_mmac else "")


def main() -> None:
    target = load_target("cpu-ort")
    lines = ["| model | form: before → refitted | random plans, median / max \\|speedup error\\|: before → refitted "
             "| pass to pass: median | within, refitted? |", "|---|---|---|---:|---|"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for tag in ["", "-2", "-3", "-4", "-5", "-6", "-7", "-8"]:
            source = SETS / f"profile-cpu-ort{tag}.json"
            before = Profile.load(source, strict=False)
            models = [a for m in before.calibration for a in ("--model", m)]
            out = Path(tmp) / source.name
            fit = [sys.executable, "-m", "edgeprune.cli", "profile", "fit", "cpu-ort", "calibration", "--stored"]
            fit += [*models, "--profile", str(source), "--out", str(out)]
            subprocess.run(fit, check=True, capture_output=True)
            after = Profile.load(out, strict=False)
            for report in json.loads((SETS / f"check-2pass{tag}.json").read_text()):
                name = report["model"]
                old, new = replay_check(before, target, report), replay_check(after, target, report)
                spread = report["repeat_speedup_median_abs_pct"]
                within = "yes" if new["median_abs_speedup_error_pct"] <= spread else "no"
                lines.append(
                    f"| {name} | {form(before.calibration[name])} → {form(after.calibration[name])} | "
                    f"{old['median_abs_speedup_error_pct']:.1f} / {old['max_abs_speedup_error_pct']:.1f} → "
                    f"{new['median_abs_speedup_error_pct']:.1f} / {new['max_abs_speedup_error_pct']:.1f} % | "
                    f"{spread:.1f} % | {within} |"
                )
    (HERE / "unbenchmarked.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
