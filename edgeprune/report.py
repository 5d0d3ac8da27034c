"""The validation report: report.json (schema'd), report.md, and PNG charts; rebuildable from JSON."""

from __future__ import annotations

import json
from pathlib import Path

from edgeprune.atomic import atomic_write_text
from edgeprune.backends.int8_layers import fp32_text
from edgeprune.errors import InputError, MissingError
from edgeprune.layer_times import layer_table

REPORT_FILE = "report.json"
# fvcore operator names -> onnxruntime op types that execute them (after ORT's fusions; the int8 kernels of a
# quantized model included, or its MACs share reads 0)
OP_FAMILIES = {"conv": ("Conv", "FusedConv", "QLinearConv", "ConvInteger"),
               "linear": ("Gemm", "MatMul", "FusedMatMul", "QGemm", "QLinearMatMul", "MatMulInteger"),
               "addmm": ("Gemm", "QGemm")}  # fmt: skip


def _fmt(v, spec: str = ".3g", unit: str = "") -> str:
    return "n/a" if v is None else format(v, spec) + unit


def speedup_interval(derived: dict, key: str = "speedup_ci") -> str:
    """" (95 % CI lo–hi)" for a measured speedup that has its paired interval (``derived[key]``), else ""."""
    ci = derived.get(key)
    return f" (95 % CI {ci[0]:.2f}–{ci[1]:.2f})" if ci else ""


def accuracy_rows(a: dict, b: dict) -> list[tuple[str, str, str, str]]:
    """The accuracy rows of the table: the metric in torch (a detector: each of its task metrics) and, on an
    int8 target, in the deployed artifact."""
    if a.get("accuracy") is None:
        return []
    metric = a.get("accuracy_metric") or "accuracy"  # reports from before the field: top-1
    unit = " %" if metric != "mAP50-95" else ""

    def row(label: str, x: float | None, y: float | None) -> tuple[str, str, str, str]:
        delta = f"{100 * (y - x):+.2f} points" if x is not None and y is not None else ""
        pct = [_fmt(None if v is None else 100 * v, ".2f", unit) for v in (x, y)]
        return label, pct[0], pct[1], delta

    rows = [row(metric, a["accuracy"], b["accuracy"])]
    rows += [row(k, a["task_metrics"][k], b["task_metrics"].get(k)) for k in (a.get("task_metrics") or {})
             if k not in ("mAP50-95", "task", "images", "instances", "imgsz", "split")]  # fmt: skip
    if a.get("deployed_accuracy") is not None:
        rows.append(row(f"{metric}, deployed (the quantized artifact in its runtime)", a["deployed_accuracy"],
                        b.get("deployed_accuracy")))  # fmt: skip
    return rows


def fp32_layers_text(side: dict) -> str:
    """What a model measured with ``int8_layers = "measured"`` left in fp32 ("" when it was not)."""
    chosen = side.get("int8_layers")
    return fp32_text(chosen) if chosen else ""


def precision_rows(a: dict, d: dict, b: dict | None = None) -> list[tuple[str, str, str, str]]:
    """On an int8 target: the dense fp32 original timed beside the quantized models on the same runtime, and
    the pruned quantized model's speedup over it; with ``int8_layers = "measured"``, what each side left in
    fp32."""
    if "latency_fp32" not in a:
        return []
    rows = [("measured latency, median, dense fp32 (the original unquantized)",
             f"{a['latency_fp32']['median_ms']:.3g} ms", "", "pruned over it: "
             + _fmt(d.get("speedup_over_fp32"), ".2f", "x") + speedup_interval(d, "speedup_over_fp32_ci"))]  # fmt: skip
    if left := fp32_layers_text(a):
        rows.append(("layers left in fp32 (measured faster here)", left, fp32_layers_text(b or {}), ""))
    return rows


def _upper(d: dict, key: str, ci_key: str) -> float | None:
    """The top of a measured speedup's interval (the speedup itself where it has none)."""
    return (d.get(ci_key) or [None, d.get(key)])[1]


def speed_warnings(report: dict) -> list[str]:
    """Where the deployment loses speed: the pruned model slower than the original (the whole interval below
    1); on an int8 target also quantizing slowing the dense model, or the pruned int8 model slower than the
    dense fp32 one; and where the profile's prediction priced in int8 layers that ship in fp32."""
    a, b, d, target = report["original"], report["pruned"], report["derived"], report["target"]
    out = []
    hi = _upper(d, "measured_speedup", "speedup_ci")
    if hi is not None and hi < 1:
        out.append(f"the pruned model runs slower than the original on {target} ({d['measured_speedup']:.2f}x)")
    if "latency_fp32" not in a:
        return out
    fp32_ms, int8_ms = a["latency_fp32"]["median_ms"], a["latency"]["median_ms"]
    precision = report.get("target_spec", {}).get("precision", "int8")
    left = {name: fp32_layers_text(side) for name, side in (("original", a), ("pruned", b))
            if (side.get("int8_layers") or {}).get("fp32_nodes")}  # fmt: skip
    if d.get("predicted_speedup") and left:  # the profile's tables were timed with every layer quantized
        out.append(f"the profile priced every layer in {precision}, but the deployed models leave layers in fp32 "
                   f"({'; '.join(f'{k}: {v}' for k, v in left.items())}): the predicted speedup is not theirs")
    # the rounds alternate between the models: in how many did the quantized one run slower
    pairs = list(zip(a["latency"]["round_medians_ms"], a["latency_fp32"]["round_medians_ms"]))
    slower = sum(q > f for q, f in pairs)
    if int8_ms > fp32_ms and slower >= 0.75 * len(pairs):
        out.append(f"quantizing slows the dense model on {target}: {precision} {int8_ms:.3g} ms against fp32 "
                   f"{fp32_ms:.3g} ms (medians; slower in {slower} of {len(pairs)} rounds), so an fp32 target may "
                   "serve this model better")  # fmt: skip
    hi = _upper(d, "speedup_over_fp32", "speedup_over_fp32_ci")
    if hi is not None and hi < 1:
        out.append(f"the pruned {precision} model runs slower than the dense fp32 one on {target} "
                   f"({d['speedup_over_fp32']:.2f}x): deploying it loses speed")  # fmt: skip
    return out


def markdown(report: dict) -> str:
    a, b, d, gate = report["original"], report["pruned"], report["derived"], report["gate"]
    rows = [
        ("MACs (fvcore)", f"{a['macs'] / 1e6:,.1f} M", f"{b['macs'] / 1e6:,.1f} M",
         _fmt(d["macs_speedup"], ".2f", "x")),
        ("params", f"{a['params'] / 1e6:.3f} M", f"{b['params'] / 1e6:.3f} M",
         _fmt(d["params_reduction"], ".2f", "x")),
        ("predicted latency (profile)", _fmt(a["predicted_ms"], ".3g", " ms"), _fmt(b["predicted_ms"], ".3g", " ms"),
         _fmt(d["predicted_speedup"], ".2f", "x")),
        ("measured latency, median", f"{a['latency']['median_ms']:.3g} ms", f"{b['latency']['median_ms']:.3g} ms",
         _fmt(d["measured_speedup"], ".2f", "x") + speedup_interval(d)),
        ("measured latency, p90", f"{a['latency']['p90_ms']:.3g} ms", f"{b['latency']['p90_ms']:.3g} ms", ""),
        ("weights (the torch parameters)", f"{a['memory']['weight_bytes'] / 1e6:.2f} MB",
         f"{b['memory']['weight_bytes'] / 1e6:.2f} MB", _fmt(d["weight_memory_reduction"], ".2f", "x")),
        ("largest activation", f"{a['memory']['largest_activation_bytes'] / 1e6:.2f} MB",
         f"{b['memory']['largest_activation_bytes'] / 1e6:.2f} MB", ""),
    ]  # fmt: skip
    if a["memory"].get("deployed_file_bytes") and b["memory"].get("deployed_file_bytes"):
        sizes = a["memory"]["deployed_file_bytes"], b["memory"]["deployed_file_bytes"]
        rows.append(("deployed file (what the runtime loads)", f"{sizes[0] / 1e6:.2f} MB", f"{sizes[1] / 1e6:.2f} MB",
                     _fmt(sizes[0] / sizes[1], ".2f", "x")))  # fmt: skip
    if "runtime_mb" in a["memory"]:
        rows.append(("runtime memory (fresh process, resident growth)", f"{a['memory']['runtime_mb']:.1f} MB",
                     f"{b['memory']['runtime_mb']:.1f} MB", _fmt(d.get("runtime_memory_reduction"), ".2f", "x")))
    rows += precision_rows(a, d, b) + accuracy_rows(a, b)
    lines = [
        f"# edgeprune validation: {a['model']} vs {b['model']} on `{report['target']}`",
        "",
        f"**Gate: {'PASS' if gate['passed'] else 'FAIL'}** ({gate['reason']}).",
        f"Realization (measured speedup / MACs speedup): **{_fmt(d['realization'], '.2f')}**.",
        *[f"\n**Warning:** {w}." for w in speed_warnings(report)],
        "",
        "| | original | pruned | ratio |",
        "|---|---|---|---|",
        *[f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows],
        "",
        f"Latency: median of {len(a['latency']['round_medians_ms'])} round medians, the two models timed in "
        "alternating rounds; spread (interquartile range of the round medians) "
        f"{a['latency']['spread_pct']:.1f} % (original), {b['latency']['spread_pct']:.1f} % (pruned). "
        "MACs are fvcore's multiply-accumulate counts.",
        *([f"\nTimed in {len(sessions)} sessions of each model (this runtime's sessions vary), speedups "
           f"{', '.join(f'{x:.2f}x' for x in sessions)}: the figures are the median session's (of two, the lower)."]
          if len(sessions := report.get("session_speedups") or []) > 1 else []),
        *([f"\nThe pruned model's file as measured (what ships): `{Path(report['deployed_files'][-1]).name}`."]
          if report.get("deployed_files") else []),
    ]  # fmt: skip
    if a.get("ms_by_op"):
        lines += ["", "## Where the time goes (onnxruntime profiler) vs where the MACs are (fvcore)", "",
                  "| op | original ms | pruned ms | original time share | original MACs share |",
                  "|---|---|---|---|---|"]
        total_a, total_macs = sum(a["ms_by_op"].values()) or 1, a["macs"] or 1
        for op in sorted(a["ms_by_op"], key=a["ms_by_op"].get, reverse=True):
            macs = sum(v for k, v in a["macs_by_op"].items() if op in OP_FAMILIES.get(k, ()))
            lines.append(f"| {op} | {a['ms_by_op'][op]:.3f} | {b['ms_by_op'].get(op, 0):.3f} | "
                         f"{a['ms_by_op'][op] / total_a:.1%} | {macs / total_macs:.1%} |")
    if a.get("ms_by_layer"):
        lines += ["", "## Where the time goes per layer (runtime profiler) vs where the MACs are (fvcore)", "",
                  "Time share ÷ MACs share above 1: the runtime spends more on the layer than its arithmetic "
                  "suggests. Runtime-inserted nodes (layout reorders) have their own row.", "",
                  *layer_table(a, b)]  # fmt: skip
    notes = a["export_notes"] + b["export_notes"]
    if notes:
        lines += ["", "Export notes: " + "; ".join(notes)]
    return "\n".join(lines) + "\n"


def plot(report: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    d = report["derived"]
    labels = ["MACs", "predicted", "measured"]
    values = [d["macs_speedup"] or 0, d["predicted_speedup"] or 0, d["measured_speedup"] or 0]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(labels, values, color=["tab:gray", "tab:blue", "tab:green"])
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_ylabel("speedup (x)")
    ax.set_title(f"{report['original']['model']} on {report['target']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "speedups.png", dpi=110)
    plt.close(fig)
    written.append("speedups.png")
    key = "ms_by_layer" if report["original"].get("ms_by_layer") else "ms_by_op"
    a, b = report["original"].get(key), report["pruned"].get(key)
    if a:
        ops = sorted(a, key=a.get, reverse=True)[:12]
        fig, ax = plt.subplots(figsize=(7, 3.6))
        xs = range(len(ops))
        ax.bar([x - 0.2 for x in xs], [a[o] for o in ops], width=0.4, label="original")
        ax.bar([x + 0.2 for x in xs], [b.get(o, 0) for o in ops], width=0.4, label="pruned")
        ax.set_xticks(list(xs), ops, rotation=30, fontsize=7)
        ax.set_ylabel("ms per inference")
        ax.legend(fontsize=7)
        fig.tight_layout()
        png = "latency_by_layer.png" if key == "ms_by_layer" else "latency_by_op.png"
        fig.savefig(out / png, dpi=110)
        plt.close(fig)
        written.append(png)
    return written


def write_report(report: dict, out: Path) -> None:
    atomic_write_text(out / REPORT_FILE, json.dumps(report, indent=1))
    atomic_write_text(out / "report.md", markdown(report))
    plot(report, out)


def rebuild(run_dir: str | Path) -> list[str]:
    """Rewrite report.md and the PNGs of every report under ``run_dir``; a Pareto chart when several."""
    run = Path(run_dir)
    paths = sorted(run.rglob(REPORT_FILE))
    if not paths:
        raise MissingError(f"no {REPORT_FILE} under {run}")
    reports = []
    for p in paths:
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}: not valid JSON ({exc})") from exc
        if data.get("schema") != "edgeprune.report/1":
            raise InputError(f"{p}: not an edgeprune report")
        write_report(data, p.parent)
        reports.append(data)
    written = [str(p.parent / "report.md") for p in paths]
    points = [(r["pruned"]["latency"]["median_ms"], r["pruned"]["accuracy"]) for r in reports
              if r["pruned"].get("accuracy") is not None]
    if len(points) >= 2:
        written.append(str(pareto(points, run / "pareto.png")))
    return written


def pareto(points: list[tuple[float, float]], path: Path) -> Path:
    """Accuracy vs measured latency; the front is every point no other point beats on both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = sorted(p for p in points if not any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.scatter(*zip(*points), color="tab:gray", label="runs")
    ax.plot(*zip(*front), color="tab:red", marker="o", label="Pareto front")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
