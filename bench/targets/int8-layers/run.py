"""int8_layers = "measured" against "all" on cpu-ort-int8 (or $TARGET), dense and pruned, beside fp32, timed in one run.

For each model: prune to 0.5x MACs with default settings (``edgeprune prune M --target cpu-ort-int8 --macs 0.5x``,
kept in OUT), export both models, let :func:`prepare_deployed` choose what each leaves in fp32 (its search time
recorded; where every layer is faster in fp32, the fp32 model ships), then time six runners in the same
alternating rounds (the target's warm-up, repeats and rounds; one model at a time): fp32, int8 with every layer,
int8 with the measured layers, for the dense and the pruned model. Calibration is on random inputs: the
quantized graphs, and so the times, are those of the deployed models.

    [TARGET=cpu-openvino-int8] python bench/targets/int8-layers/run.py OUT timm:lcnet_050 timm:fastvit_t8 ...
    python bench/targets/int8-layers/run.py OUT --table > bench/targets/int8-layers/results.md
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgeprune.backends import prepare_runner, takes_module, time_runners
from edgeprune.backends.deployable import prepare_deployed
from edgeprune.export import export_onnx
from edgeprune.targets import load_target
from edgeprune.validation import resolve_model

TARGET = os.environ.get("TARGET", "cpu-ort-int8")  # or cpu-openvino-int8, cpu-xnnpack-int8


def run_model(out: Path, name: str) -> dict:
    tag = name.replace(":", "_")
    pruned_dir = out / f"{tag}-pruned"
    if not (pruned_dir / "model").exists():
        subprocess.run(["edgeprune", "prune", name, "--target", TARGET, "--macs", "0.5x", "--out", str(pruned_dir)],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    target = load_target(TARGET)
    fp32 = target.as_fp32()
    pruned = resolve_model(str(pruned_dir / "model"))
    dense = resolve_model(name, pretrained=name.startswith("cifar_"), side=pruned.input_chw[1])
    shape = target.input_shape(dense.input_chw)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    runners, record = {}, {"model": name, "input": list(shape)}
    with tempfile.TemporaryDirectory() as tmp:
        for side, ref in (("dense", dense), ("pruned", pruned)):
            if takes_module(target):  # ExecuTorch: each runner lowers the module itself
                source = source_all = ref.module.eval()
            else:  # a folder per quantized model: the backend writes its int8 file beside the ONNX
                source = Path(tmp) / side / "model.onnx"
                (source.parent / "all").mkdir(parents=True)
                export_onnx(ref.module, torch.from_numpy(x), source)
                source_all = source.parent / "all" / "model.onnx"
                source_all.symlink_to(source)
            runners[f"{side} fp32"] = prepare_runner(fp32, source, shape)
            runners[f"{side} int8 all"] = prepare_runner(target, source_all, shape)
            started = time.time()  # the search, and the model it ships, as validate and export build them
            runners[f"{side} int8 measured"], chosen = prepare_deployed(replace(target, int8_layers="measured"),
                                                                        source, shape)  # fmt: skip
            record[side] = {"search_s": round(time.time() - started, 1), **chosen.to_dict()}
        timed = time_runners(runners, x, target, reference="dense fp32")
    record["ms"] = {k: s.median_ms for k, s in timed.stats.items()}
    record["spread_pct"] = {k: s.spread_pct for k, s in timed.stats.items()}
    record["over_dense_fp32"] = {k: r.inverse().to_dict() for k, r in timed.ratios.items()}
    # peaks so far (one model per run to read them per model); the children include `edgeprune prune` and, on
    # ExecuTorch, the searches' own processes. Linux counts a child's peak from its fork, so "largest child"
    # is at least this process's size at that moment: it tells the search's own peak only where it is larger
    record["peak_rss_mb"] = {who: round(resource.getrusage(flag).ru_maxrss / 1024)
                             for who, flag in (("this process", resource.RUSAGE_SELF),
                                               ("largest child", resource.RUSAGE_CHILDREN))}  # fmt: skip
    return record


def table(out: Path) -> str:
    rows = ["| model | search s (dense, pruned) | left in fp32: dense | pruned | dense int8 all | dense int8 measured "
            "| pruned int8 all | pruned int8 measured | pruned fp32 |", "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for path in sorted(out.glob("*.json")):
        r = json.loads(path.read_text())
        cells = {k: f"{s['median']:.2f}× ({s['low']:.2f}–{s['high']:.2f})" for k, s in r["over_dense_fp32"].items()}
        left = {side: f"{r[side]['fp32_nodes']}/{r[side]['nodes']}: "
                      f"{', '.join(r[side]['fp32_groups']) or 'none'}" for side in ("dense", "pruned")}  # fmt: skip
        rows.append(f"| {r['model']} | {r['dense']['search_s']:.0f}, {r['pruned']['search_s']:.0f} | {left['dense']} "
                    f"| {left['pruned']} | {cells['dense int8 all']} | {cells['dense int8 measured']} "
                    f"| {cells['pruned int8 all']} | {cells['pruned int8 measured']} "
                    f"| {cells['pruned fp32']} |")  # fmt: skip
    return "\n".join(rows)


def main(argv: list[str]) -> None:
    out = Path(argv[0])
    if argv[1:] == ["--table"]:
        print(table(out))
        return
    out.mkdir(parents=True, exist_ok=True)
    for name in argv[1:]:
        dest = out / f"{name.replace(':', '_')}.json"
        if dest.exists():
            continue
        started = time.time()
        record = run_model(out, name)
        dest.write_text(json.dumps(record, indent=1))
        print(f"{name}: {time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
