"""Plan and shrink a model for a target from names and folders: what `edgeprune prune` calls."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from edgeprune.atomic import atomic_dir, atomic_write_text
from edgeprune.backends.int8_layers import Int8Layers
from edgeprune.errors import OutputExistsError
from edgeprune.graph import build_graph
from edgeprune.latency.costs import make_cost
from edgeprune.latency.layers import collect_layers
from edgeprune.latency.profile import Profile, ProfileError, measure_hint
from edgeprune.latency.runs import layer_search_kept, timed_as_deployed
from edgeprune.latency.target_profile import load_for_target
from edgeprune.models import create_model
from edgeprune.models.registry import Pretrained, square_side
from edgeprune.plan.candidates import choose_fastest, choose_predicted, compared_summary, plan_shapes, weighs_shapes
from edgeprune.plan.measured import check_measurable, check_runs_here, plan_measured
from edgeprune.plan.planner import Budget, BudgetError, PlanConstraints, PlanResult, plan_pruning
from edgeprune.plan.uniform import plan_uniform
from edgeprune.prune import (
    Plan,
    input_chw,
    load_model_ref,
    measure_channels,
    prune_model,
    refit_layers,
    save_pruned,
    uniform_plan,
)
from edgeprune.prune.oracle import check_reloaded, check_shrunk
from edgeprune.targets import Target, channel_align, load_target

IMPORTANCE_FILE = "importance.json"
# Calibration images, or a function of (model, registry name, input side) that returns them (N, C, H, W).
Calibration = torch.Tensor | Callable[[torch.nn.Module, str, int], torch.Tensor]


@dataclass(frozen=True)
class PruneSettings:
    """How to plan: the budget, what ranks a step, the solver and the per-group constraints."""

    budget: Budget
    # latency, macs, or auto: latency for a latency budget; for a MACs or parameter budget, a one-step
    # channels-only greedy plan keeps the fastest of the latency-ranked, MACs-ranked and uniform plans, timed or
    # priced (plan/candidates.py; uniform where the profile cannot price the model); other solvers and branch
    # removal rank by latency where the profile prices every layer, else by MACs, and the plan says why
    ranked_by: str = "auto"
    solver: str = "greedy"
    constraints: PlanConstraints = PlanConstraints()
    align: int | None = None  # None: the target's channel blocking (see targets.channel_align)
    # > 0: time each plan on the target beside the unpruned model and plan again, up to this many plans, until
    # the measured latency meets the (latency) budget (prune/measured.py); the target must run on this machine
    measured_rounds: int | None = None  # None: AUTO_MEASURED_ROUNDS where the profile was measured here, else 0
    # time a latency-ranked, a MACs-ranked and a uniform plan for the budget on the target and keep the fastest
    # (plan/candidates.py); the target must run on this machine. None: where the budget weighs the shapes by
    # default, timed when the profile was measured on this device and the target runs here, else priced
    compare_plans: bool | None = None


AUTO_MEASURED_ROUNDS = 4  # a latency budget's plans timed by default on the profile's own device


def check_timing(settings: PruneSettings, target) -> None:
    """Refuse settings that time plans on ``target`` and cannot, before anything is loaded or written."""
    if settings.measured_rounds and settings.compare_plans:
        raise BudgetError("measured rounds and plan comparison both time plans on the target: choose one")
    if settings.measured_rounds:
        check_measurable(settings.budget, target)
    if settings.compare_plans:
        check_runs_here(target)


def read_importance(ref: str | os.PathLike, fingerprint: str) -> tuple[dict[int, list[float]] | None, str]:
    """A training run's per-channel importance (when ``ref`` is one), checked against the graph."""
    path = Path(ref) / IMPORTANCE_FILE
    if not path.is_file():
        return None, "weight energy"
    try:
        data = json.loads(path.read_text())
        groups = {int(g): v for g, v in data["groups"].items()}
    except (json.JSONDecodeError, KeyError, AttributeError, ValueError) as exc:
        raise BudgetError(f"{path}: malformed importance file ({exc})") from exc
    if data.get("fingerprint", fingerprint) != fingerprint:
        raise BudgetError(f"{path} was written for another architecture (fingerprint {data['fingerprint']})")
    return groups, f"{data.get('regularizer', '?')} importance from {path}"


def prune_run(
    model_ref: str,
    target_name: str | Target,
    settings: PruneSettings,
    out_dir: str | os.PathLike,
    profile_path: str | os.PathLike | None = None,
    pretrained: Pretrained = False,
    schedule: tuple[int, int, float | None] = (1, 1, None),
    freeze_unknown: bool = False,
    input_size: int | None = None,
    calibration: Calibration | None = None,
) -> PlanResult:
    """Plan ``model_ref`` (name, pruned folder or training run) under a budget and write the pruned model.

    Writes ``plan.json``, ``plan.md`` and ``plan_result.json`` and the pruned model in ``model/``; checks
    the shrunk model against the masked-equivalence oracle before saving it. ``schedule`` = (step, steps,
    cost of the unpruned model) makes this step i of an iterative schedule: it goes i/steps of the way from
    the unpruned cost to the budget, and the per-group cap is shared out over the steps. ``input_size``: the
    square side to plan at (default: the size saved with a model folder, else the registry's). ``calibration``:
    rank channels by how much the output changes without them on these images, across groups (no per-group
    normalization), and fold the removed channels' means into the next layers (:mod:`edgeprune.prune.calibrate`).
    ``target_name``: a target's name or TOML file, or the :class:`~edgeprune.targets.Target` itself.
    """
    out = _empty_out(out_dir)
    target = target_name if isinstance(target_name, Target) else load_target(target_name)
    check_timing(settings, target)
    model, name, kwargs, changes = load_model_ref(model_ref, pretrained)
    model.eval()
    chw = input_chw(model_ref, name, kwargs, input_size)
    shape = target.input_shape(chw)
    graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=name, model_kwargs=kwargs,
                        freeze_unknown=freeze_unknown)
    layers = collect_layers(model, shape)
    step, steps, origin = schedule
    by_default = (settings.ranked_by == "auto" and settings.budget.kind != "latency"
                  and weighs_shapes(settings.solver, settings.constraints, steps))  # fmt: skip
    settings, unpriced, profile = _resolve_ranking(settings, profile_path, target, layers, name, shape[-1])
    if profile is None and "latency" in (settings.budget.kind, settings.ranked_by):
        profile = load_for_target(target, profile_path)
    importance, source = read_importance(model_ref, graph.fingerprint)
    calibrated = _calibrate(model, graph, name, square_side(shape[1:]), calibration)
    if calibrated is not None:
        importance, source = calibrated[1].scores, f"output change on {calibrated[1].images} calibration images"
    align = settings.align if settings.align is not None else channel_align(target)
    c = settings.constraints
    share = lambda removed: 1 - (1 - removed) ** (1 / steps)  # noqa: E731
    constraints = PlanConstraints(**{**vars(c), "align": align, "max_removed": share(c.max_removed),
                                     "max_removed_shared": share(c.max_removed_shared),
                                     "normalize": c.normalize and calibrated is None})  # fmt: skip
    budget = settings.budget
    cost = make_cost(budget.kind, profile, name, shape[-1])
    now = cost.total(sum(cost.layer(x, x.cin, x.cout) for x in layers))
    origin = origin or now
    if steps > 1:
        budget = Budget(budget.kind, origin - (origin - budget.resolve(origin)) * step / steps, relative=False)
    plan = lambda b: plan_pruning(model, graph, layers, b, settings.ranked_by, profile, importance,  # noqa: E731
                                  constraints, settings.solver, side=shape[-1])  # fmt: skip
    relative = settings.budget.relative
    measured_rounds = settings.measured_rounds
    if measured_rounds is None:  # a latency budget is met as timed, by default, on the device the profile describes
        auto = budget.kind == "latency" and not settings.compare_plans and on_its_device(profile, target)
        measured_rounds = AUTO_MEASURED_ROUNDS if auto else 0
    if measured_rounds and (step == steps or relative):  # an ms budget's earlier steps go by prediction
        # timed beside the model the schedule started from: the budget is a fraction of that one's latency, and
        # each step is timed to its share of the way (the predictor's error would otherwise all land on the last)
        reference = model if steps == 1 else create_model(name, **kwargs).eval()
        goal = Budget("latency", 1 - (1 - settings.budget.value) * step / steps if relative else settings.budget.value,
                      relative)  # fmt: skip
        run_on, keep, int8_layers = timed_as_deployed(target, reference, shape)
        try:
            result, chosen, rounds = plan_measured(
                goal, measured_rounds, run_on, reference, shape, origin,
                lambda ms: plan(Budget("latency", ms, relative=False)),
                lambda r: prune_model(model, graph, r.plan, changes, chw)[0].eval(), keep,
            )  # fmt: skip
        except BudgetError as exc:
            if settings.measured_rounds is not None:
                raise
            raise BudgetError(f"{exc} (plans are timed by default where the profile was measured; "
                              "--measured-rounds 0 plans by prediction alone)") from exc
        result.measured = {**asdict(chosen), "rounds": [asdict(r) for r in rounds]}
        result.int8_layers = _int8_layers_summary(int8_layers, run_on)
        result.budget = goal  # met as measured; the predicted budget it took is in result.measured
    elif settings.compare_plans or by_default:
        # a MACs or parameter budget ranked by default: the fastest shape, timed or priced (plan/candidates.py);
        # the default read the profile already (_resolve_ranking), --compare-plans did not
        priced, why = (_profile_for_shapes(profile, profile_path, target, layers) if settings.compare_plans
                       else (profile, unpriced))  # fmt: skip
        shrink = lambda r: prune_model(model, graph, r.plan, changes, chw)[0].eval()  # noqa: E731
        timed = settings.compare_plans or (settings.compare_plans is None and on_its_device(priced, target))
        result = _compare_shapes(model, graph, layers, budget, priced, why, importance, constraints, settings, target,
                                 shape, shrink if timed else None)  # fmt: skip
    else:
        result = plan(budget)
    if result.int8_layers is None and target.precision == "int8" and target.int8_layers == "measured":
        result.int8_layers = {"timed": False}  # priced with every layer in int8: the plan says so
    if unpriced:  # why the plan is not ranked by latency, and what it is instead
        how = "cut uniformly on the channel blocking" if result.ranked_by == "uniform" else "ranked by MACs"
        result.note = f"{how}, not by latency: {unpriced}"
    if graph.traced_values:  # the trace followed the code's path at this input size
        read = (f"the model's code read {len(graph.traced_values)} traced value(s), such as its input's size "
                f"(`edgeprune graph {model_ref}` lists them): planned for {'x'.join(map(str, shape[2:]))} inputs; at "
                "another size it may run other code: plan at the size you deploy")  # fmt: skip
        result.note = "; ".join(n for n in (result.note, read) if n)
    pruned, spec, err, refits = _shrink_checked(model, graph, result.plan, changes, chw, shape[1:], calibrated)
    if out.exists():
        out.rmdir()
    summary = {**result.to_dict(), "model": name, "from": str(model_ref), "target": target.name,
               "importance": source, "align": align, "origin": origin, "step": [step, steps],
               "solver": settings.solver, "oracle_error": err, "refit": refits}  # fmt: skip
    with atomic_dir(out) as tmp:  # all of it or nothing
        result.plan.save(tmp / "plan.json")
        (tmp / "plan.md").write_text(f"# Plan for {name} on {target.name} ({result.budget})\n\n{result.table()}\n")
        save_pruned(pruned, spec, tmp / "model")
        check_reloaded(pruned, tmp / "model", shape[1:])
        (tmp / "plan_result.json").write_text(json.dumps(summary, indent=1))
    return result


def prune_in_steps(model_ref: str, target_name: str | Target, settings: PruneSettings, out_dir: str | os.PathLike,
                   steps: int, pretrained: Pretrained = False, **options) -> PlanResult:  # fmt: skip
    """:func:`prune_run` in ``steps`` prunes without training between them, step i going i/steps of the way to the
    budget from the unpruned cost. Each step plans on the model the previous one left: with ``calibration`` it
    measures importance again and refits the next layers to that model's outputs, so each cut is chosen and
    compensated knowing the cuts before it. Intermediate models are discarded; the last goes to ``out_dir``, and
    its ``plan_result.json`` names ``model_ref`` as its source (its plan applies to the step before it).
    ``options``: :func:`prune_run`'s keywords (profile_path, freeze_unknown, input_size, calibration)."""
    out = _empty_out(out_dir)
    if steps == 1:
        return prune_run(model_ref, target_name, settings, out, pretrained=pretrained, **options)
    if options.get("calibration") is None:
        raise BudgetError("pruning in steps needs calibration images: without them every step ranks channels by "
                          "weight energy, and a training run's importance holds for its first step only")  # fmt: skip
    origin, source = None, model_ref
    with tempfile.TemporaryDirectory(prefix="edgeprune-steps-") as tmp, layer_search_kept():
        for step in range(1, steps + 1):
            folder = out if step == steps else Path(tmp) / f"step{step}"
            result = prune_run(source, target_name, settings, folder, pretrained=pretrained if step == 1 else False,
                               schedule=(step, steps, origin), **options)  # fmt: skip
            origin = json.loads((folder / "plan_result.json").read_text())["origin"]
            source = str(folder)
            options = {**options, "input_size": None}  # a pruned folder carries its size
    summary = json.loads((out / "plan_result.json").read_text())
    atomic_write_text(out / "plan_result.json", json.dumps({**summary, "from": str(model_ref)}, indent=1))
    return result


def _resolve_ranking(settings: PruneSettings, path, target, layers, name: str,
                     side: int) -> tuple[PruneSettings, str, Profile | None]:  # fmt: skip
    """``settings`` with an ``auto`` ranking made ``latency`` or ``macs`` (see :class:`PruneSettings`), the
    reason a MACs or parameter budget is not ranked by latency (the profile cannot price the model, with the
    command that fixes it), and the profile when it was read here."""
    if settings.ranked_by != "auto":
        return settings, "", None
    if settings.budget.kind == "latency":
        return replace(settings, ranked_by="latency"), "", None
    if settings.compare_plans:  # it plans every ranking, and needs no profile for the MACs-ranked ones
        return replace(settings, ranked_by="macs"), "", None
    priced, why = _profile_for_shapes(None, path, target, layers)
    if priced is not None:
        return replace(settings, ranked_by="latency"), "", priced
    hint = measure_hint(target.name, name, side)
    return replace(settings, ranked_by="macs"), f"{why}; for a latency-ranked plan: {hint}", None


def on_its_device(profile: Profile | None, target) -> bool:
    """Whether plans are timed by default (a latency budget's measured rounds, a MACs or parameter budget's plan
    shapes): the profile was measured on this device (the user is on the target) and the target runs here. The
    profile's prices can miss a budget or pick the wrong shape where timing does not
    (docs/benchmarks/latency-vs-flops.md); elsewhere they are all there is."""
    from edgeprune.backends import unavailable_reason

    return profile is not None and not profile.device_mismatch() and not unavailable_reason(target)


def _profile_for_shapes(profile: Profile | None, path, target, layers) -> tuple[Profile | None, str]:
    """The profile that prices the shapes of a MACs or parameter budget, or why there is none: the shapes are
    timed anyway, so a missing profile only takes the latency-ranked shape out."""
    if profile is None:
        try:
            profile = load_for_target(target, path)
        except ProfileError as exc:
            return None, str(exc)
    gaps = profile.missing(layers)
    if gaps:
        return None, f"the profile has no table for {len(gaps)} of the model's layer geometries (e.g. {gaps[0]})"
    return profile, ""


def _compare_shapes(model, graph, layers, budget, profile, why, importance, constraints, settings, target, shape,
                    shrink) -> PlanResult:  # fmt: skip
    """The fastest of the plan shapes for ``budget``, timed on ``target`` beside ``model`` with ``shrink``, or
    without it as ``profile`` prices them (plan/candidates.py); ``why`` says why there is no ``profile`` (the
    latency-ranked shape is then skipped)."""

    def plan_shape(kind: str) -> PlanResult:
        if kind == "latency" and profile is None:
            raise BudgetError(why)
        if kind == "uniform":
            return plan_uniform(model, graph, layers, budget, profile, importance, constraints, shape[-1])
        return plan_pruning(model, graph, layers, budget, kind, profile, importance, constraints, settings.solver,
                            side=shape[-1])  # fmt: skip

    plans, skipped = plan_shapes(plan_shape)
    if shrink:
        run_on, keep, int8_layers = timed_as_deployed(target, model, shape)
        chosen, rows = choose_fastest(plans, run_on, model, shape, shrink, keep_fp32=keep)
    else:
        chosen, rows = choose_predicted(plans)
    result = plans[chosen]
    result.compared = compared_summary(chosen, rows, skipped)
    if shrink:
        result.int8_layers = _int8_layers_summary(int8_layers, run_on)
    return result


def _int8_layers_summary(chosen: Int8Layers | None, run_on) -> dict | None:
    """What the plans were timed with on an int8 target with ``int8_layers = "measured"`` (PlanResult.int8_layers)."""
    if chosen is None:
        return None
    return {"timed": True, "precision": run_on.precision, **chosen.to_dict()}


def _calibrate(model: torch.nn.Module, graph, name: str, side: int | None, calibration: Calibration | None):
    """The calibration images and ``model``'s channel statistics on them, or None without them."""
    if calibration is None:
        return None
    images = torch.as_tensor(calibration if isinstance(calibration, torch.Tensor) else calibration(model, name, side))
    return images, measure_channels(model, graph, images)


def _shrink_checked(model: torch.nn.Module, graph, plan: Plan, changes, chw, checked_chw, calibrated):
    """Shrink ``model`` by ``plan`` and check it against the oracle; with calibration statistics, removed channels'
    means are folded into the next layers and those layers are then refitted to the unpruned outputs
    (:mod:`edgeprune.prune.reconstruct`; after the oracle, which checks the surgery, not the refit).
    Returns the pruned model, its spec, the oracle error and each refitted layer's output errors."""
    means = calibrated[1].means if calibrated is not None else None
    pruned, spec = prune_model(model, graph, plan, changes, chw, means)
    err = check_shrunk(model, graph, plan, pruned, checked_chw, means)
    refits = []
    if calibrated is not None:
        refits = [asdict(r) for r in refit_layers(model, pruned, graph, plan, calibrated[0])]
    return pruned, spec, err, refits


def _empty_out(out_dir: str | os.PathLike) -> Path:
    """The output folder, refused before any work when it already holds something."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise OutputExistsError(f"{out} is not empty: choose another --out (nothing was written)")
    return out


def shrink_run(ref: str, pretrained: Pretrained, ratio: float | None, plan_path: str | None, out_dir: str,
               layout: str = "run", freeze_unknown: bool = False, input_size: int | None = None,
               calibration: Calibration | None = None) -> dict:  # fmt: skip
    """Shrink ``ref`` by a uniform ratio or a plan file; ``layout`` "run" writes out/plan.json + out/model/ (as a
    budget prune does), "flat" the model files and plan.json straight into out/ (the older `shrink`).
    ``calibration``: as :func:`prune_run` (the ratio removes the channels whose loss changes the output least)."""
    out = _empty_out(out_dir)
    net, name, kwargs, changes = load_model_ref(ref, pretrained)
    net.eval()
    chw = input_chw(ref, name, kwargs, input_size)
    example = torch.randn(1, *chw)
    graph = build_graph(net, example, model_name=name, model_kwargs=kwargs, freeze_unknown=freeze_unknown)
    calibrated = _calibrate(net, graph, name, square_side(chw), calibration)
    scores = calibrated[1].scores if calibrated is not None else None
    plan = Plan.load(plan_path) if plan_path else uniform_plan(net, graph, ratio, scores)
    pruned, spec, err, refits = _shrink_checked(net, graph, plan, changes, chw, example.shape[1:], calibrated)
    if out.exists():
        out.rmdir()
    with atomic_dir(out) as tmp:
        folder = tmp / "model" if layout == "run" else tmp
        save_pruned(pruned, spec, folder)
        check_reloaded(pruned, folder, example.shape[1:])
        plan.save(tmp / "plan.json")
    before = sum(p.numel() for p in net.parameters())
    return {"model": name, "params_before": before, "params_after": sum(p.numel() for p in pruned.parameters()),
            "oracle_error": err, "refit": refits, "out": str(out)}  # fmt: skip
