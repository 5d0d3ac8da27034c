"""Which stage-uniform inner widths of ResNet-56 at half the MACs run fastest on a target? (exploration)

Every plan keeps the residual streams whole and cuts each stage's block insides to one width; those near
the MACs budget are timed with the dense model and Torch-Pruning's plans in one interleaved run.

    python bench/r56-shapes/explore.py --target cpu-ort --out bench/r56-shapes/cpu-ort.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[2] / "tools"))
from bench_planner import measure, paired  # noqa: E402
from peer_plans import torch_pruning_plans  # noqa: E402

from edgeprune.graph import build_graph  # noqa: E402
from edgeprune.models import create_model  # noqa: E402
from edgeprune.prune import Plan, prune_model  # noqa: E402
from edgeprune.prune.importance import magnitude_scores  # noqa: E402
from edgeprune.targets import load_target  # noqa: E402
from edgeprune.validation import count_macs  # noqa: E402


def stage_plan(model, graph, widths: tuple[int, int, int], streams: tuple[int, int, int] = (16, 32, 64)) -> Plan:
    keep = {}
    for g in graph.prunable_groups:
        w = (streams if g.shared else widths)[{16: 0, 32: 1, 64: 2}[g.size]]
        score = magnitude_scores(model, g)
        order = sorted(range(g.size), key=lambda i: -float(score[i]))
        keep[g.id] = sorted(order[:w])
    return Plan(graph.model_name, graph.fingerprint, keep)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--target", default="cpu-ort")
    p.add_argument("--lo", type=float, default=0.47)
    p.add_argument("--hi", type=float, default=0.505)
    p.add_argument("--step", type=int, default=4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--streams", action="append", default=[], help="s1/s2/s3 stream widths to try too")
    p.add_argument("--out", required=True)
    p.add_argument("--render", action="store_true", help="only write the Markdown of --out's JSON")
    a = p.parse_args()
    if a.render:
        data = json.loads(Path(a.out).read_text())
        data.setdefault("best_peer", min((k for k in data["rows"] if k.startswith("Torch")),
                                         key=lambda k: data["rows"][k]["ms"]))
        Path(a.out).with_suffix(".md").write_text(markdown(data))
        return
    warnings.simplefilter("ignore")
    target = load_target(a.target)
    model = create_model("cifar_resnet56", pretrained=True).eval()
    x = torch.randn(1, 3, 32, 32)
    graph = build_graph(model, x, model_name="cifar_resnet56")
    dense = count_macs(model, x)[0]
    models = {"dense": (model, None)}
    streams = [(16, 32, 64)] + [tuple(int(v) for v in s.split("/")) for s in a.streams]
    for s in streams:
        for w in itertools.product(range(a.step, 17, a.step), range(a.step, 33, a.step), range(a.step, 65, a.step)):
            pruned = prune_model(model, graph, stage_plan(model, graph, w, s))[0].eval()
            r = count_macs(pruned, x)[0] / dense
            if a.lo <= r <= a.hi:
                label = f"{w[0]}/{w[1]}/{w[2]}" + ("" if s == (16, 32, 64) else f" streams {s[0]}/{s[1]}/{s[2]}")
                models[label] = (pruned, r)
    models.update({k: (m, count_macs(m, x)[0] / dense) for k, m in
                   torch_pruning_plans(model, "cifar_resnet56", (1, 3, 32, 32), 0.5).items()})
    print(len(models), "models", flush=True)
    ms, rounds = measure("cifar_resnet56", target, models, a.rounds)
    rows = {k: {"macs": models[k][1], "ms": ms[k], "speedup": paired(rounds, "dense", k)} for k in ms if k != "dense"}
    best_peer = min((k for k in ms if k.startswith("Torch")), key=ms.get)
    for k in rows:
        rows[k]["vs_peer"] = paired(rounds, best_peer, k)
    data = {"target": a.target, "dense_ms": ms["dense"], "best_peer": best_peer, "rows": rows}
    Path(a.out).write_text(json.dumps(data, indent=1))
    Path(a.out).with_suffix(".md").write_text(markdown(data))
    print(markdown(data))


def markdown(data: dict) -> str:
    """The plans fastest first: MACs fraction, median ms, speedup over dense and over the peer's faster plan."""
    peer = data.get("best_peer", "Torch-Pruning")
    lines = [f"ResNet-56 on {data['target']}, dense {data['dense_ms']:.3f} ms; inner widths per stage"
             " (stream widths where cut)", "",
             f"| plan | MACs | ms | speedup over dense (95 % CI) | over {peer} (95 % CI) |",
             "|---|---:|---:|---:|---:|"]
    for k, r in sorted(data["rows"].items(), key=lambda kv: kv[1]["ms"]):
        s, v = r["speedup"], r["vs_peer"]
        lines.append(f"| {k} | {r['macs']:.3f} | {r['ms']:.3f} | {s[0]:.2f}× ({s[1]:.2f}–{s[2]:.2f}) | "
                     f"{v[0]:.2f}× ({v[1]:.2f}–{v[2]:.2f}) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
