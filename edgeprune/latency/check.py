"""How well a profile predicts: random pruned variants measured end to end, each beside the dense model."""

from __future__ import annotations

import random
import statistics

import torch

from edgeprune.graph import build_graph
from edgeprune.latency.layers import Layer, collect_layers
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import DEFAULT_SETTINGS, Profile
from edgeprune.latency.profiler import build_model, measure_variants, model_input_shape
from edgeprune.latency.sweep import settle_runs
from edgeprune.latency.variants import PlanMaker, random_plan
from edgeprune.prune import prune_model
from edgeprune.targets import Target


def check_variants(name: str, target: Target, n_plans: int, seed: int = 0, branches: float = 0.0,
                   side: int | None = None) -> tuple[list, list[list[Layer]]]:  # fmt: skip
    """The dense model and ``n_plans`` random pruned variants (seeded), with their layers; index 0 is dense.

    ``branches``: the chance that a plan removes each residual branch it may remove (0: channel plans only).
    """
    models, layers, _ = _variants(name, target, n_plans, seed, branches, side)
    return models, layers


def _variants(name: str, target: Target, n_plans: int, seed: int = 0, branches: float = 0.0,
              side: int | None = None, planned: PlanMaker | None = None) -> tuple[list, list[list[Layer]], list[str]]:
    """:func:`check_variants`, then the plans ``planned`` makes, and those plans' labels."""
    with torch.random.fork_rng():  # seeded weights: a plan ranked by their importance is the same every run
        torch.manual_seed(seed)
        model = build_model(name, target, side)
    shape = model_input_shape(name, target, side)
    graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=name)
    rng = random.Random(seed)
    plans = []
    for _ in range(n_plans):
        plan = random_plan(graph, rng)
        if branches:
            plan.keep.update({g: [] for g in graph.branches if rng.random() < branches})
        plans.append(plan)
    dense = collect_layers(model, shape)
    made = planned(model, graph, dense, shape[-1]) if planned else []
    models = [prune_model(model, graph, plan)[0] for plan in plans + [plan for _, plan in made]]
    return [model] + models, [dense] + [collect_layers(m, shape) for m in models], [label for label, _ in made]


def predicted_ms(profile: Profile, name: str, layers: list[list[Layer]], side: int | None = None) -> list[float]:
    """Each variant's prediction as the planner counts it, against the dense model's layers (``layers[0]``)."""
    model = LatencyModel(profile, name, side)
    return [model.predict_pruned(layers[0], x).ms for x in layers]


def error_row(predicted: float, dense_predicted: float, measured: list[float], dense: list[float],
              passes: int | None = None) -> dict:  # fmt: skip
    """One variant's errors: in ms, and in speedup over the dense model timed beside it (medians over its
    timings). ``passes``: how many of the timings are passes; the rest decided between passes that disagreed
    (:func:`~edgeprune.latency.sweep.settle_runs`) and stay out of the pass-to-pass spread.

    The ms error carries whatever the machine drifted since it was profiled; the speedup error is what the
    planner relies on, since it ranks and budgets relative to the dense model.
    """
    m, d, n = statistics.median(measured), statistics.median(dense), passes or len(measured)
    row = {"predicted_ms": predicted, "measured_ms": m, "error_pct": 100 * (predicted - m) / m, "dense_ms": d,
           "predicted_speedup": dense_predicted / predicted, "measured_speedup": d / m}  # fmt: skip
    row["speedup_error_pct"] = 100 * (row["predicted_speedup"] / row["measured_speedup"] - 1)
    if n > 1:
        row["passes_ms"], row["passes_dense_ms"] = measured[:n], dense[:n]
    if len(measured) > n:
        row["deciding_ms"], row["deciding_dense_ms"] = measured[n:], dense[n:]
    return row


def _abs_stats(values: list[float]) -> dict:
    values = [abs(v) for v in values]
    return {"median": statistics.median(values), "max": max(values)}


def summarize(rows: list[dict], dense_predicted: float) -> dict:
    """Median and max |error| in ms and in speedup; with several passes, how far a pass strays from the first."""
    ms, speed = _abs_stats([r["error_pct"] for r in rows]), _abs_stats([r["speedup_error_pct"] for r in rows])
    out = {"median_abs_error_pct": ms["median"], "max_abs_error_pct": ms["max"],
           "median_abs_speedup_error_pct": speed["median"], "max_abs_speedup_error_pct": speed["max"],
           "dense_predicted_ms": dense_predicted,
           "dense_measured_ms": statistics.median(r["dense_ms"] for r in rows)}  # fmt: skip
    if "passes_ms" in rows[0]:  # the measurement's own repeatability: a floor under any predictor's error
        ms_rep = [100 * (p / r["passes_ms"][0] - 1) for r in rows for p in r["passes_ms"][1:]]
        speed_rep = [100 * ((d / p) / (r["passes_dense_ms"][0] / r["passes_ms"][0]) - 1)
                     for r in rows for p, d in zip(r["passes_ms"][1:], r["passes_dense_ms"][1:])]  # fmt: skip
        rep, rep_speed = _abs_stats(ms_rep), _abs_stats(speed_rep)
        out.update(repeat_median_abs_pct=rep["median"], repeat_max_abs_pct=rep["max"],
                   repeat_speedup_median_abs_pct=rep_speed["median"], repeat_speedup_max_abs_pct=rep_speed["max"])
    return out


def check_profile(profile: Profile, target: Target, name: str, n_plans: int, seed: int = 0, passes: int = 1,
                  branches: float = 0.0, side: int | None = None, planned: PlanMaker | None = None) -> dict:
    """Prediction error (%) over ``n_plans`` random pruned variants measured end to end, in ms and in speedup
    over the dense model timed beside each; ``passes`` > 1 times everything again to show how repeatable the
    measurement itself is. ``planned``: plans a planner makes, timed alike and reported apart (``planned``), as
    the plan a planner picks is the one its prices flatter most."""
    models, layers, labels = _variants(name, target, n_plans, seed, branches, side, planned)
    shape = model_input_shape(name, target, side)
    predicted = predicted_ms(profile, name, layers, side)
    runs = settle_runs(lambda ms, n: measure_variants(target, ms, shape, n), models, passes,
                       DEFAULT_SETTINGS.sweep["tolerance"])  # a run whose passes disagree is timed once more
    times = [([ms for _, ms in pairs], [d for d, _ in pairs]) for pairs in runs]
    report = _report(name, predicted[: n_plans + 1], times[:n_plans], passes)
    if labels:
        report["planned"] = [{"plan": label, **error_row(predicted[n_plans + 1 + i], predicted[0], ms, dense, passes)}
                             for i, (label, (ms, dense)) in enumerate(zip(labels, times[n_plans:]))]  # fmt: skip
    return report


def _report(name: str, predicted: list[float], times: list[tuple[list[float], list[float]]],
            passes: int | None = None) -> dict:  # fmt: skip
    """A check's report: each variant's (ms per timing, the dense model's ms per timing) against ``predicted``
    (index 0 is dense); the first ``passes`` timings are passes (:func:`error_row`)."""
    rows = [error_row(predicted[j + 1], predicted[0], ms, dense, passes) for j, (ms, dense) in enumerate(times)]
    return {"model": name, "plans": rows, **summarize(rows, predicted[0])}


def replay_check(profile: Profile, target: Target, report: dict, seed: int = 0, branches: float = 0.0) -> dict:
    """A stored :func:`check_profile` report's plans (drawn again from ``seed`` and ``branches``) predicted by
    ``profile``, against the times that report measured: no timing, so profiles can be compared on the same
    measurements."""
    name, plans = report["model"], report["plans"]
    _, layers = check_variants(name, target, len(plans), seed, branches)
    times = [(p.get("passes_ms", [p["measured_ms"]]) + p.get("deciding_ms", []),
              p.get("passes_dense_ms", [p["dense_ms"]]) + p.get("deciding_dense_ms", [])) for p in plans]  # fmt: skip
    return _report(name, predicted_ms(profile, name, layers), times, len(plans[0].get("passes_ms", [0])))


def describe_check(report: dict) -> str:
    """The check's summary in words."""
    r, n = report, len(report["plans"])
    text = (f"{r['model']}: {n} random plans, |error| median {r['median_abs_error_pct']:.1f} %, max "
            f"{r['max_abs_error_pct']:.1f} %; in speedup over dense, median {r['median_abs_speedup_error_pct']:.1f} %, "
            f"max {r['max_abs_speedup_error_pct']:.1f} % (dense: predicted {r['dense_predicted_ms']:.2f} ms, "
            f"measured {r['dense_measured_ms']:.2f} ms)")  # fmt: skip
    if "repeat_median_abs_pct" in r:
        text += (f"\n{r['model']}: the measurement itself, pass to pass: ms |change| median "
                 f"{r['repeat_median_abs_pct']:.1f} %, max {r['repeat_max_abs_pct']:.1f} %; speedup median "
                 f"{r['repeat_speedup_median_abs_pct']:.1f} %, max {r['repeat_speedup_max_abs_pct']:.1f} %")
    for p in r.get("planned", []):
        text += (f"\n{r['model']}: {p['plan']}: speedup over dense predicted {p['predicted_speedup']:.2f}x, measured "
                 f"{p['measured_speedup']:.2f}x ({p['speedup_error_pct']:+.1f} %)")
    return text
