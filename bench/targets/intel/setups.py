"""Why `--compare-plans` and `tools/bench_planner.py` rank ResNet-56's latency and MACs-ranked plans in
opposite order: the same two plans timed in three setups, each repeated, alternating.

- pair: the two plans alone, fresh sessions, interleaved rounds;
- beside dense: each plan beside a fresh dense session, as `--compare-plans` times them;
- all together: every plan of bench_planner.py alive at once, interleaved, as bench_planner.py times them.

    python bench/targets/intel/setups.py OUT.json [REPEATS]
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
from bench_planner import variants  # noqa: E402

from edgeprune.backends import prepare_runner, time_runners  # noqa: E402
from edgeprune.latency import Profile  # noqa: E402
from edgeprune.latency.profiler import export_for, measure_variants, model_input_shape  # noqa: E402
from edgeprune.plan.planner import Budget  # noqa: E402
from edgeprune.targets import load_target  # noqa: E402
from edgeprune.timing import summarize_ratios  # noqa: E402

LAT, MACS = "latency-driven", "macs-ranked, on the blocking"


def main() -> None:
    warnings.simplefilter("ignore")
    out, repeats = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    target = load_target("cpu-ort")
    profile = Profile.load(Path(__file__).with_name("cpu-ort--intel-xeon-2c.json"))
    name = "cifar_resnet56"
    models = variants(name, target, profile, Budget.parse("macs", "0.5x"), 0.0, pretrained=True)
    shape = model_input_shape(name, target)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    long = replace(target, rounds=target.rounds * 5)
    result: dict[str, list[float]] = {"pair": [], "beside dense": [], "all together": []}
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            k: export_for(target, m, shape, Path(tmp) / f"m{i}.onnx") for i, (k, (m, _)) in enumerate(models.items())
        }

        def runner(label: str):  # a fresh session
            return prepare_runner(target, files[label], shape)

        for rep in range(repeats):
            # MACs-ranked over latency-driven, as a latency ratio: < 1 means the MACs-ranked plan ran faster
            t = time_runners({LAT: runner(LAT), MACS: runner(MACS)}, x, long, reference=LAT)
            result["pair"].append(t.ratios[MACS].median)
            passes = measure_variants(target, [models["dense"][0], models[LAT][0], models[MACS][0]], shape, 3)
            result["beside dense"] += [(p[1][1] / p[1][0]) / (p[0][1] / p[0][0]) for p in passes]
            t = time_runners({k: runner(k) for k in models}, x, long, reference=LAT)
            result["all together"].append(t.ratios[MACS].median)
            print(rep, {k: [round(v, 3) for v in vs] for k, vs in result.items()}, flush=True)
    summary = {k: summarize_ratios(v).to_dict() for k, v in result.items()}
    Path(out).write_text(json.dumps({"model": name, "ratio": "MACs-ranked ms / latency-driven ms",
                                     "runs": result, "summary": summary}, indent=1) + "\n")  # fmt: skip
    for k, s in summary.items():
        print(f"{k}: {s['median']:.3f} ({s['low']:.3f}-{s['high']:.3f})")


if __name__ == "__main__":
    main()
