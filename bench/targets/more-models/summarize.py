"""The table of a run of bench/targets/unbenchmarked-int8/run.sh over many models and targets: what each prune
kept and what each validate measured, from the run folder's logs and report.json files. No timing.

    python bench/targets/more-models/summarize.py OUT > bench/targets/more-models/results-table.md
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from edgeprune.report import speed_warnings

# the warnings validate gives (recomputed from each report.json with this code), in a few words
SHORT = {"quantizing slows": "dense int8 slower than dense fp32",
         "model runs slower than the dense fp32": "pruned int8 slower than dense fp32",
         "runs slower than the original": "pruned slower than dense"}  # fmt: skip


def shape_kept(prune_log: str) -> str:
    """The plan shape prune kept, as its log names it ("kept: ..."), else whether it was priced."""
    kept = re.search(r"- plan shapes ([^\n]*)\(kept: ([^)]+)\)", prune_log)
    if not kept:
        return "see log"
    return kept.group(2) + (", unpriced" if "not priced" in kept.group(1) else "")


def row(out: Path, line: str) -> str:
    tag, prune, validate = re.match(r"(\S+) prune=(\S+) validate=(\S+)", line).groups()
    target = next(t for t in ("cpu-openvino-int8", "cpu-ort-int8", "cpu-xnnpack-int8", "cpu-openvino",
                              "cpu-xnnpack") if tag.startswith(t + "-"))  # fmt: skip
    model = tag[len(target) + 1 :].replace("timm_", "timm:").replace("ultralytics_", "ultralytics:")
    if prune != "0" or validate != "0":
        log = (out / f"{tag}.{'prune' if prune != '0' else 'val'}.log").read_text().strip().splitlines()
        error = next((x for x in reversed(log) if x.startswith(("Error", "ValueError", "RuntimeError"))), log[-1])
        return f"| `{target}` | {model} | exit {prune}/{validate} | | | | {error[:160]} |"
    report = json.loads((out / f"{tag}-val" / "report.json").read_text())
    d = report["derived"]
    ci = d.get("speedup_ci") or [d["measured_speedup"]] * 2
    over = f"{d['speedup_over_fp32']:.2f}×" if "speedup_over_fp32" in d else ""
    kept = shape_kept((out / f"{tag}.prune.log").read_text())
    warned = "; ".join(next(v for k, v in SHORT.items() if k in w) for w in speed_warnings(report))
    return (f"| `{target}` | {model} | {kept} | {1 / d['macs_speedup']:.3f}x | {d['measured_speedup']:.2f}× "
            f"({ci[0]:.2f}–{ci[1]:.2f}) | {over} | {warned} |")  # fmt: skip


def main(out: Path) -> None:
    lines = {}
    for line in (out / "summary.txt").read_text().splitlines():
        lines[line.split()[0]] = line  # a later run of a tag (after a fix) replaces the earlier one
    print("| target | model | shape kept | MACs kept | pruned over dense (95 % CI) | over dense fp32 "
          "| warning or error |")
    print("|---|---|---|---:|---:|---:|---|")
    for line in lines.values():
        print(row(out, line))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
