"""Coverage matrix: every registered model through trace -> prune 30% -> oracle -> MACs -> ONNX -> ORT.

Each model runs in a fresh subprocess (honest peak memory, one failure cannot break the next). Results
accumulate in OUT/zoo.json (re-running skips models already there unless --force) and OUT/zoo.md.

    python tools/zoo_check.py --out zoo                 # every model
    python tools/zoo_check.py --out zoo --models resnet50 vit_b_16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATIO = 0.3


def check_one(name: str) -> dict:
    import torch
    from fvcore.nn import FlopCountAnalysis

    from edgeprune.export import check_onnx, export_onnx
    from edgeprune.graph import build_graph
    from edgeprune.prune import prune_model, uniform_plan
    from edgeprune.prune.oracle import ORACLE_TOLERANCE, is_lively, lively_model, oracle_error

    torch.set_num_threads(int(os.environ.get("ZOO_THREADS", "2")))
    row: dict = {"model": name}
    t_all = time.perf_counter()
    # Random norm statistics so outputs depend on the input: an oracle check on a constant is vacuous.
    model, size = lively_model(name)
    row["input"] = size
    x = torch.randn(2, 3, size, size)
    row["lively"] = is_lively(model, x)
    t0 = time.perf_counter()
    graph = build_graph(model, x[:1], model_name=name)
    row["graph_s"] = round(time.perf_counter() - t0, 3)
    row["graph_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    row["groups"] = len(graph.groups)
    row["prunable"] = len(graph.prunable_groups)
    row["frozen"] = len(graph.groups) - row["prunable"]
    plan = uniform_plan(model, graph, RATIO)
    pruned, _ = prune_model(model, graph, plan)
    row["oracle_err"] = oracle_error(model, graph, plan, pruned, x)
    row["oracle_ok"] = row["oracle_err"] <= ORACLE_TOLERANCE

    def macs(m):
        counter = FlopCountAnalysis(m, x[:1]).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return counter.total()

    try:
        row["macs_before"], row["macs_after"] = macs(model), macs(pruned)
    except Exception as exc:  # fvcore's jit tracer does not handle every model
        row["macs_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
    row["params_before"] = sum(p.numel() for p in model.parameters())
    row["params_after"] = sum(p.numel() for p in pruned.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = export_onnx(pruned, x[:1], Path(tmp) / "m.onnx")
            row["exporter"], row["onnx_external_data"] = result.exporter, result.external_data
            row["ort_err"] = check_onnx(pruned, Path(tmp) / "m.onnx", x)
            row["onnx"] = "ok"
        except Exception as exc:
            row["onnx"] = f"failed: {type(exc).__name__}: {str(exc)[:160]}"
    row["wall_s"] = round(time.perf_counter() - t_all, 1)
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return row


def passed(row: dict) -> bool:
    return all((row.get("oracle_ok"), row.get("lively"), row.get("onnx") == "ok", row.get("prunable", 0) > 0))


def markdown(rows: list[dict]) -> str:
    head = ("| model | input | groups (prunable/frozen) | graph s | graph MB | oracle err | MACs before → after |"
            " params before → after | ONNX+ORT | wall s | result |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | | | | | | | | | | FAIL: {r['error'][:100]} |")
            continue
        m = (f"{r['macs_before'] / 1e6:,.0f}M → {r['macs_after'] / 1e6:,.0f}M" if "macs_before" in r
             else f"n/a ({r.get('macs_error', '')[:40]})")
        p = f"{r['params_before'] / 1e6:.2f}M → {r['params_after'] / 1e6:.2f}M"
        ort = "ok" if r.get("onnx") == "ok" else r.get("onnx", "")[:60]
        lines.append(
            f"| {r['model']} | {r['input']} | {r['groups']} ({r['prunable']}/{r['frozen']}) | {r['graph_s']} |"
            f" {r['graph_peak_rss_mb']} | {r['oracle_err']:.1e} | {m} | {p} | {ort} | {r['wall_s']} |"
            f" {'pass' if passed(r) else 'FAIL'} |"
        )
    n = sum(passed(r) for r in rows)
    return f"{n} of {len(rows)} models pass.\n\n" + "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="zoo")
    ap.add_argument("--models", nargs="*")
    ap.add_argument("--force", action="store_true", help="re-check models already in zoo.json")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per model")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(check_one(args.one)))
        return 0
    from edgeprune.models import list_models
    from edgeprune.prune.oracle import ORACLE_TOLERANCE

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "zoo.json"
    rows = {r["model"]: r for r in json.loads(db.read_text())["models"]} if db.exists() else {}
    names = args.models or list_models()
    for name in names:
        if name in rows and not args.force:
            continue
        try:
            proc = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True,
                                  timeout=args.timeout)
            if proc.returncode == 0:
                rows[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            else:
                rows[name] = {"model": name, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "?"}
        except subprocess.TimeoutExpired:
            rows[name] = {"model": name, "error": f"timed out after {args.timeout} s"}
        r = rows[name]
        print(f"{name}: {'pass' if passed(r) else 'FAIL'} {r.get('error', '')}", flush=True)
        ordered = [rows[n] for n in list_models() if n in rows]
        meta = {"machine": f"{os.cpu_count()} cores", "ratio": RATIO, "tolerance": ORACLE_TOLERANCE}
        tmp = db.with_suffix(".tmp")
        tmp.write_text(json.dumps({"meta": meta, "models": ordered}, indent=1))
        os.replace(tmp, db)
        (out / "zoo.md").write_text(markdown(ordered))
    ordered = [rows[n] for n in list_models() if n in rows]
    return 0 if all(passed(r) for r in ordered) else 1


if __name__ == "__main__":
    sys.exit(main())
