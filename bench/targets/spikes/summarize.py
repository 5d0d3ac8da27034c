"""How far `profile fit TARGET spikes` moved the widths it timed again, per target (from the settle-*.log files
beside this one): count, share moved by more than 10 % (down, up), and percentiles of settled / stored ms.

    python bench/targets/spikes/summarize.py > bench/targets/spikes/summary.md
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
LINE = re.compile(r"^(\S+) (\d+)->(\d+): ([\d.]+) -> ([\d.]+) ms$")

print("| target | widths timed beside their neighbours | moved > 10 % | down / up > 10 % "
      "| settled ÷ stored: 10th / 25th / 50th / 75th / 90th percentile |")
print("|---|---:|---:|---|---|")
for log in sorted(HERE.glob("settle-*.log")):
    ratios = np.array([float(m[5]) / float(m[4]) for m in map(LINE.match, log.read_text().splitlines()) if m])
    if not len(ratios):
        continue
    q = " / ".join(f"{v:.2f}" for v in np.percentile(ratios, [10, 25, 50, 75, 90]))
    moved = np.mean(np.abs(ratios - 1) > 0.1)
    down, up = np.mean(ratios < 0.9), np.mean(ratios > 1.1)
    print(f"| `{log.stem.removeprefix('settle-')}` | {len(ratios)} | {100 * moved:.0f} % | "
          f"{100 * down:.0f} / {100 * up:.0f} % | {q} |")
