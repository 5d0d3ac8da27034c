"""Collect the headline figures of every benchmark file into bench/results.json and a Markdown table.

    python tools/bench_results.py bench/graph.json bench/regularizer.json bench/predictor.json \
        bench/planner.json --out bench/results.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from edgeprune.atomic import atomic_write_text
from edgeprune.latency.profile import device_fingerprint


def rows_for(name: str, data: dict) -> list[dict]:
    """(benchmark, model, metric, value, goal) rows from one benchmark file."""
    rows = []
    if name == "graph":
        for r in data["results"]:
            rows.append(("graph build", r["model"], "edgeprune ms / Torch-Pruning ms",
                         f"{r['edgeprune_ms']:.1f} / {r['torch_pruning_ms']:.1f}", "faster than Torch-Pruning"))
    elif name == "regularizer":
        for model, regs in data["results"].items():
            for reg, r in regs.items():
                if reg != "none":
                    rows.append(("regularizer overhead", model, reg, f"{r['overhead_pct']:.1f} %", "<= 5 %"))
    elif name.startswith("predictor"):
        what = "predictor error" + (" (branches removed too)" if data["meta"].get("branches") else "")
        for model, r in data["results"].items():
            s = r["summary"]
            rows.append((what, model, "abs. error in ms, median / max",
                         f"{s['median_abs_error_pct']:.1f} % / {s['max_abs_error_pct']:.1f} %", "<= 5 % / <= 15 %"))
            rows.append((what, model, "abs. error in speedup over dense, median / max",
                         f"{s['median_abs_speedup_error_pct']:.1f} % / {s['max_abs_speedup_error_pct']:.1f} %", ""))
            if "repeat_max_abs_pct" in s:
                rows.append(("measurement repeatability", model, "same plans, pass 2 vs pass 1, ms: median / max",
                             f"{s['repeat_median_abs_pct']:.1f} % / {s['repeat_max_abs_pct']:.1f} %", ""))
                rows.append(("measurement repeatability", model, "same plans, pass 2 vs pass 1, speedup: median / max",
                             f"{s['repeat_speedup_median_abs_pct']:.1f} % / {s['repeat_speedup_max_abs_pct']:.1f} %",
                             ""))  # fmt: skip
    elif name == "machine":
        s = data["summary"]
        rows.append(("machine steadiness", "-", "fixed numpy work over a minute: max / min time",
                     f"{s['max_over_min']:.2f} ({s['samples_off_median_by_more_than_15pct']} of "
                     f"{data['meta']['samples']} samples > 15 % off the median)", ""))  # fmt: skip
    elif name == "curve":
        for r in data["rows"]:
            at = r.get("curve_jpeg_test_at_this_speed")
            read = f"; OICSR curve here {at:.2%}" if at is not None else ""
            planned = "by MACs" if data.get("kind") == "macs" else f"with {Path(data['profile']).name}"
            planned += ", branches may go" if any(p.get("remove_branches") for p in data["rows"]) else ""
            rows.append((f"accuracy vs measured speed (planned {planned})", "cifar_resnet56",
                         r["model"],
                         f"{r['accuracy']['jpeg_test']:.2%} at {r['measured_speedup']:.2f}x{read}", ""))
    elif name.startswith("planner"):
        branches = " (branches may go)" if data.get("settings", {}).get("remove_branches") else ""
        for r in data["rows"]:
            lat = r["latency-driven"]
            # files before session 10 hold only the FLOPs-driven ratio, as latency_vs_flops
            for label, ratio in (r.get("latency_vs") or {"flops-driven": r["latency_vs_flops"]}).items():
                rows.append(("latency-driven vs " + label + branches, r["model"],
                             f"measured speedup ratio at {r['budget']}", f"{ratio:.2f}",
                             ">= 1.15" if label == "flops-driven" else ""))  # fmt: skip
            rows.append(("realization" + branches, r["model"], "latency-driven: measured / MACs speedup",
                         f"{lat['realization']:.2f} ({lat['measured_speedup']:.2f}x measured)", ">= 1.0 at 2x"))
    elif name.startswith("measured"):
        for r in data["rows"]:
            m = r["measured"]
            value = m["error"].split(":")[0] if "error" in m else (
                f"{m['retimed']:.3f}x re-timed ({m['measured']:.3f}x in {len(m['rounds'])} rounds; profile only "
                + (f"{r['profile_only']['retimed']:.3f}x)" if "retimed" in r["profile_only"] else "refused)"))
            rows.append(("measured budget", r["model"], f"--latency {r['budget']}x --measured-rounds: latency ratio",
                         value, f"<= {r['budget']}x (+2 %)"))  # fmt: skip
    elif name == "accuracy":
        rows += accuracy_rows(data)
    elif "trials_ms" in data:  # bench/ratio/MODEL-RUNSxROUNDS.json
        m = data["meta"]
        for ratio, r in data["summary"].items():
            rows.append((f"timing layout {m['rounds']} rounds x {m['repeats']} runs", m["model"],
                         f"{ratio} over {m['trials']} trials: median, range",
                         f"{r['median']:.3f}, {r['range_pct']:.1f} %", ""))  # fmt: skip
    elif name == "sparsity":
        model = data["meta"]["model"]
        for label, r in data["results"].items():
            zero = f", SSR zero F rows {r['ssr_zero_rows']}" if r["ssr_zero_rows"] is not None else ""
            rows.append(("sparsity", model, f"{label} after {data['meta']['steps']} steps",
                         f"{r['below_1pct_of_group_mean']:.1%} below 1 % of group mean, 5th percentile "
                         f"{r['energy_quantiles']['0.05']:.3f}{zero}; "
                         f"top-1 {r['test_acc_jpeg']:.2%}", "OICSR sparser than separated GL"))  # fmt: skip
    return [dict(zip(("benchmark", "model", "metric", "value", "goal"), row)) for row in rows]


def accuracy_rows(data: dict) -> list[tuple]:
    """Accuracy at the same measured speedup, and the two comparisons the goals name."""
    by = {r["method"]: r for r in data["rows"]}
    settings = data.get("settings", {})
    streams = "cut" if settings.get("streams", True) else "kept whole"  # runs before the option cut them
    bench = f"accuracy at measured speedup (aimed at {settings.get('speedup', '?')}x, streams {streams})"
    rows = [(bench, data["model"], f"{m}: JPEG top-1 (measured speedup)",
             f"{r['accuracy']['jpeg_test']:.2%} ({r['measured_speedup']:.2f}x)", "")
            for m, r in by.items()]  # fmt: skip
    for other, goal in (("torch_pruning", ">= +0.5 points"), ("group_lasso", "> 0 (the OICSR paper's claim)")):
        if "oicsr" in by and other in by:
            delta = 100 * (by["oicsr"]["accuracy"]["jpeg_test"] - by[other]["accuracy"]["jpeg_test"])
            speeds = f"{by['oicsr']['measured_speedup']:.2f}x vs {by[other]['measured_speedup']:.2f}x"
            rows.append((bench, data["model"], f"oicsr minus {other} (at {speeds})",
                         f"{delta:+.2f} points", goal))  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out", default="bench/results.json")
    args = ap.parse_args()
    rows = []
    for f in args.files:
        rows += rows_for(Path(f).stem, json.loads(Path(f).read_text()))
    machine = {**device_fingerprint("onnxruntime"), "python": platform.python_version()}
    atomic_write_text(args.out, json.dumps({"machine": machine, "sources": args.files, "rows": rows}, indent=1))
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores, onnxruntime {machine.get('onnxruntime')}, "
             f"torch {machine.get('torch')}", "", "| benchmark | model | metric | value | goal |",
             "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['benchmark']} | {r['model']} | {r['metric']} | {r['value']} | {r['goal']} |" for r in rows]
    atomic_write_text(Path(args.out).with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
