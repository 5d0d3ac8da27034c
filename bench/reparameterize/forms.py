"""Dense timm models in their training form against their deploy form (timm's reparameterize_model), on one
target, one interleaved run per model at the registry input size: what edgeprune timed, exported and pruned
before it built these models as deployed. Random seeded weights; fvcore MACs of each form.

    python bench/reparameterize/forms.py OUT.json --target cpu-ort timm:repvgg_a0 timm:mobileone_s0 ...
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from bench_latency import bench_batch  # noqa: E402

from edgeprune.atomic import atomic_write_text  # noqa: E402
from edgeprune.models import create_model, get_entry  # noqa: E402
from edgeprune.targets import load_target  # noqa: E402
from edgeprune.validation import count_macs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--target", default="cpu-ort")
    args = ap.parse_args()
    target = load_target(args.target)
    result = {"target": target.name, "models": {}}
    for name in args.models:
        torch.manual_seed(0)
        training = create_model(name, reparameterize=False).eval()
        deployed = get_entry(name).deploy_form(copy.deepcopy(training)).eval()
        side = get_entry(name).input_size[1]
        x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            y = training(x)
            err = ((deployed(x) - y).norm() / y.norm()).item()
        macs = {k: count_macs(m, x)[0] for k, m in (("training", training), ("deploy", deployed))}
        with tempfile.TemporaryDirectory() as tmp:
            run = bench_batch([target], {"training": training, "deploy": deployed}, side, target.batch, Path(tmp))
        result["models"][name] = {"side": side, "macs": macs, "relative_output_error": err, **run}
        s = run["rows"][f"{target.name} | deploy"]["speedup"]
        print(f"{name}: MACs {macs['training'] / 1e6:.0f}M -> {macs['deploy'] / 1e6:.0f}M, deploy form "
              f"{s['median']:.2f}x ({s['low']:.2f}-{s['high']:.2f}) the training form's speed", flush=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
