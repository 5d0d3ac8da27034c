"""Commands that look before anything is changed: models, graph, targets."""

from __future__ import annotations

import click
import torch

from edgeprune.cli.common import emit, freeze_unknown_option, json_option, options, weights_options
from edgeprune.graph import build_graph
from edgeprune.graph.assemble import UNREAD_PARAMETER
from edgeprune.graph.groups import ChannelGraph
from edgeprune.models import create_model_for_size, families, get_entry, list_models
from edgeprune.models.registry import resized

model_build_options = options(
    click.argument("model"),
    weights_options,
    click.option("--input-size", type=click.IntRange(min=8), default=None, help="Square input side, or a sequence "
                 "model's length (default: the model's)."),  # fmt: skip
    freeze_unknown_option,
)


def build_for_graph(model: str, pretrained: bool | str, input_size: int | None, freeze_unknown: bool):
    """A registry model, an example input and its channel graph."""
    entry = get_entry(model)
    shape = resized(entry.input_size, input_size)  # a model that is not square keeps its (H, W)
    net = create_model_for_size(model, shape[-1], pretrained=pretrained).eval()
    kwargs = {entry.size_kwarg: shape[-1]} if entry.size_kwarg else {}
    example = torch.randn(1, *shape)
    graph = build_graph(net, example, model_name=model, model_kwargs=kwargs, freeze_unknown=freeze_unknown)
    return net, example, graph


@click.command("models", short_help="List the models that can be built by name.")
@click.option("--family", type=click.Choice(families()), default=None, help="Only this family (timm: those checked).")
@json_option
def models_cmd(family: str | None, as_json: bool) -> None:
    """List the models that can be built by name."""
    rows = []
    for name in list_models(family):
        e = get_entry(name)
        rows.append({"name": name, "family": e.family, "input": list(e.input_size), "pretrained": e.has_pretrained})
    emit(as_json, rows, lambda: "\n".join(
        f"{r['name']:28s} {r['family']:12s} {'x'.join(map(str, r['input'])):11s} "
        f"{'pretrained' if r['pretrained'] else ''}".rstrip() for r in rows))  # fmt: skip


@click.command("graph", short_help="Show a model's channel groups and what is frozen.")
@model_build_options
@click.option("--all-members", is_flag=True, help="List every module of every group.")
@json_option
def graph_cmd(model, pretrained, input_size, freeze_unknown, all_members, as_json) -> None:
    """Print MODEL's channel groups: id, size, members, prunable or frozen and why."""
    _, _, graph = build_for_graph(model, pretrained, input_size, freeze_unknown)
    emit(as_json, graph_json(graph), lambda: describe_graph(graph, all_members))


def describe_graph(graph: ChannelGraph, all_members: bool) -> str:
    n_prunable = len(graph.prunable_groups)
    lines = [f"{graph.model_name}: {len(graph.groups)} groups, {n_prunable} prunable, "
             f"{len(graph.groups) - n_prunable} frozen; input {tuple(graph.input_shape)}; "
             f"fingerprint {graph.fingerprint}"]  # fmt: skip
    unread = [g.id for g in graph.groups if g.frozen and g.frozen.endswith(UNREAD_PARAMETER)]
    for g in graph.groups:
        if g.id in unread:
            continue  # listed in one line below
        status = "prunable" if g.prunable else f"frozen: {g.frozen}"
        partial = len(g.prunable_units)
        if g.prunable and partial < g.size:
            status += f" ({g.size - partial} channels frozen)"
        if g.id in graph.branches:
            status += f"; a whole residual branch (ends in {graph.branches[g.id].tail}: --remove-branches)"
        mods = g.modules()
        shown = ", ".join(f"{p}({'/'.join(sorted(k))})" for p, k in mods.items()) if all_members else g.describe()
        lines.append(f"  [{g.id:3d}] size {g.size:5d}  {status}\n        {shown}")
    if unread:
        lines.append(f"Frozen, not listed: {len(unread)} parameters read in forward only for their device or dtype "
                     f"(torch's transformer layers check them), groups {', '.join(map(str, unread))}")
    if graph.traced_values:
        lines.append(f"Python code that read a traced value (its path at input {tuple(graph.input_shape)}; another "
                     "input size may take another: plan at the size you deploy):")  # fmt: skip
        lines += [f"  {line} -> {_values_text(values)}" for line, values in graph.traced_values.items()]
    return "\n".join(lines)


def _values_text(values: list) -> str:
    distinct = list(dict.fromkeys(map(repr, values)))
    shown = ", ".join(distinct[:4]) + (", ..." if len(distinct) > 4 else "")
    return shown + (f" ({len(values)} times)" if len(values) > 1 else "")


def graph_json(graph: ChannelGraph) -> dict:
    return {
        "model": graph.model_name,
        "fingerprint": graph.fingerprint,
        "input_shape": list(graph.input_shape),
        "groups": [
            {
                "id": g.id,
                "size": g.size,
                "prunable": g.prunable,
                "frozen_reason": g.frozen,
                "frozen_units": g.size - len(g.prunable_units),
                "members": {p: sorted(k) for p, k in g.modules().items()},
                "branch_tail": graph.branches[g.id].tail if g.id in graph.branches else None,
            }
            for g in graph.groups
        ],
        "traced_values": [{"code": line, "values": [repr(v) for v in values]}
                          for line, values in graph.traced_values.items()],  # fmt: skip
    }


@click.command("targets", short_help="List targets and whether each runs here.")
@click.option("--targets-dir", type=click.Path(file_okay=False), default=None,
              help="Extra folder of target TOMLs, searched first.")  # fmt: skip
@json_option
def targets_cmd(targets_dir: str | None, as_json: bool) -> None:
    """List the targets and whether each can run on this machine (and why not)."""
    from edgeprune.backends import unavailable_reason
    from edgeprune.targets import TargetError, list_targets, load_target

    rows = []
    for name in list_targets(targets_dir):
        try:
            t = load_target(name, targets_dir)
        except TargetError as exc:
            rows.append({"name": name, "invalid": str(exc)})
            continue
        why = unavailable_reason(t)
        rows.append({"name": name, "backend": t.backend, "device": t.device, "precision": t.precision,
                     "runs_here": why is None, "why_not": why, "source": t.source})  # fmt: skip

    def text() -> str:
        out = []
        for r in rows:
            if "invalid" in r:
                out.append(f"{r['name']:22s} invalid: {r['invalid']}")
                continue
            status = "runs here" if r["runs_here"] else f"not here: {r['why_not']}"
            out.append(f"{r['name']:22s} {r['backend']:12s} {r['device']:5s} {r['precision']:5s} {status}")
        return "\n".join(out)

    emit(as_json, rows, text)
