"""Physical pruning: build a smaller network from a Plan (real smaller tensors, no masks)."""

from __future__ import annotations

import copy
from collections import defaultdict

import torch
import torch.nn as nn

from edgeprune.graph.branches import Branch
from edgeprune.graph.groups import (
    CONV_IN,
    CONV_OUT,
    LINEAR_IN,
    LINEAR_OUT,
    NORM,
    PARAM,
    REMAP_IN,
    REMAP_OUT,
    RNN_IN,
    ChannelGraph,
    rnn_input_weights,
)
from edgeprune.models.layers import BranchConstant, ChannelRemap, EmptyChannels
from edgeprune.prune.plan import Plan, PlanError

# What shrink changed, per module path: the attributes an arch spec must restore.
ArchChanges = dict[str, dict]


def removed_slices(graph: ChannelGraph, plan: Plan) -> dict[str, dict[str, set[int]]]:
    """Module (or parameter) path -> member kind -> removed indices, from every group of the plan."""
    out: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for gid, gone in plan.removed(graph).items():
        for u in gone:
            for m in graph.groups[gid].units[u].members:
                key = f"{m.path}#{m.dim}" if m.kind == PARAM else m.path
                out[key][m.kind].add(m.index)
    return out


def _keep(size: int, removed: set[int]) -> torch.Tensor:
    return torch.tensor([i for i in range(size) if i not in removed], dtype=torch.long)


def _set_param(module: nn.Module, name: str, value: torch.Tensor | None) -> None:
    old = getattr(module, name)
    if old is None or value is None:
        return
    if isinstance(old, nn.Parameter):
        setattr(module, name, nn.Parameter(value.contiguous(), requires_grad=old.requires_grad))
    else:
        setattr(module, name, value.contiguous())


def shrink_conv(m: nn.Conv2d, removed: dict[str, set[int]]) -> dict:
    out_rm, in_rm = removed.get(CONV_OUT, set()), removed.get(CONV_IN, set())
    if m.transposed:  # weight (in, out, *kernel); the graph prunes only ungrouped ones
        keep_in, keep_out = _keep(m.in_channels, in_rm), _keep(m.out_channels, out_rm)
        _set_param(m, "weight", m.weight.detach()[keep_in][:, keep_out])
        _set_param(m, "bias", None if m.bias is None else m.bias.detach()[keep_out])
        m.in_channels, m.out_channels = len(keep_in), len(keep_out)
        return {"in_channels": m.in_channels, "out_channels": m.out_channels}
    keep_out = _keep(m.out_channels, out_rm)
    weight = m.weight.detach()[keep_out]
    groups = m.groups
    if groups == 1:
        weight = weight[:, _keep(m.in_channels, in_rm)]
    else:  # whole conv groups go: the per-group input slice of the weight is unchanged
        in_g, out_g = m.in_channels // groups, m.out_channels // groups
        in_blocks = {i // in_g for i in in_rm}
        out_blocks = {o // out_g for o in out_rm}
        if len(in_rm) != len(in_blocks) * in_g or in_blocks != out_blocks:
            raise PlanError(f"{m}: plan removes partial conv groups (inputs {sorted(in_rm)}, outputs {sorted(out_rm)})")
        groups -= len(in_blocks)
    _set_param(m, "weight", weight)
    _set_param(m, "bias", None if m.bias is None else m.bias.detach()[keep_out])
    m.out_channels, m.in_channels, m.groups = len(keep_out), m.in_channels - len(in_rm), groups
    return {"in_channels": m.in_channels, "out_channels": m.out_channels, "groups": m.groups}


def shrink_linear(m: nn.Linear, removed: dict[str, set[int]]) -> dict:
    keep_out = _keep(m.out_features, removed.get(LINEAR_OUT, set()))
    keep_in = _keep(m.in_features, removed.get(LINEAR_IN, set()))
    _set_param(m, "weight", m.weight.detach()[keep_out][:, keep_in])
    _set_param(m, "bias", None if m.bias is None else m.bias.detach()[keep_out])
    m.out_features, m.in_features = len(keep_out), len(keep_in)
    return {"in_features": m.in_features, "out_features": m.out_features}


def shrink_batch_norm(m: nn.modules.batchnorm._BatchNorm, removed: dict[str, set[int]]) -> dict:
    keep = _keep(m.num_features, removed.get(NORM, set()))
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(m, name)
        _set_param(m, name, None if value is None else value.detach()[keep])
    m.num_features = len(keep)
    return {"num_features": m.num_features}


def shrink_remap(m: ChannelRemap, removed: dict[str, set[int]]) -> dict:
    in_rm, out_rm = removed.get(REMAP_IN, set()), removed.get(REMAP_OUT, set())
    new_pos = {old: new for new, old in enumerate(_keep(m.in_channels, in_rm).tolist())}
    index = [new_pos.get(src, -1) for j, src in enumerate(m.index.tolist()) if j not in out_rm]
    m.in_channels -= len(in_rm)
    m.index = torch.tensor(index, dtype=torch.long)
    return {"in_channels": m.in_channels, "index": index}


def shrink_recurrent(m: nn.RNNBase, removed: dict[str, set[int]]) -> dict:
    keep = _keep(m.input_size, removed.get(RNN_IN, set()))
    for name in rnn_input_weights(m):
        _set_param(m, name, getattr(m, name).detach()[:, keep])  # RNNBase re-points its flat weights on setattr
    m.input_size = len(keep)
    return {"input_size": m.input_size}


SURGERY = [
    ((nn.modules.conv._ConvNd,), shrink_conv),
    ((nn.Linear,), shrink_linear),
    ((nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm), shrink_batch_norm),
    ((ChannelRemap,), shrink_remap),
    ((nn.RNNBase,), shrink_recurrent),
]


def _surgery_for(module: nn.Module):
    for types, fn in SURGERY:
        if isinstance(module, types):
            return fn
    raise PlanError(f"no surgery for {type(module).__name__}: edgeprune cannot shrink it")


def shrink_param(model: nn.Module, key: str, removed: set[int]) -> tuple[str, tuple[int, ...]]:
    path, dim = key.rsplit("#", 1)
    owner_path, _, attr = path.rpartition(".")
    owner = model.get_submodule(owner_path)
    value = getattr(owner, attr).detach()
    _set_param(owner, attr, value.index_select(int(dim), _keep(value.shape[int(dim)], removed)))
    return path, tuple(getattr(owner, attr).shape)


def removed_contribution(module: nn.Module, kind: str, index: list[int], mean: torch.Tensor) -> torch.Tensor | None:
    """What input channels ``index`` holding their ``mean`` add to each output of ``module`` (a conv away from
    its zero padding, or a linear); None for a grouped conv, whose removed inputs take their outputs along, and
    for a transposed conv."""
    idx = torch.tensor(index, dtype=torch.long)
    w = module.weight.detach()
    if kind == LINEAR_IN:
        return w[:, idx] @ mean[idx].to(w.dtype)
    if getattr(module, "groups", 1) > 1 or getattr(module, "transposed", False):
        return None  # a transposed conv: how many taps reach an output pixel varies with its position
    return (w[:, idx].flatten(2).sum(2) * mean[idx].to(w.dtype)).sum(1)


def fold_recurrent(module: nn.RNNBase, index: list[int], mean: torch.Tensor) -> bool:
    """Fold input features ``index`` holding their ``mean`` into a recurrent layer's input biases (its input
    enters each gate linearly, so this is exact); False where the layer has no biases (nothing folded)."""
    if not module.bias:
        return False
    idx = torch.tensor(index, dtype=torch.long)
    for name in rnn_input_weights(module):
        w = getattr(module, name).detach()
        getattr(module, name.replace("weight", "bias")).data += w[:, idx] @ mean[idx].to(w.dtype)
    return True


def compensate(model: nn.Module, graph: ChannelGraph, plan: Plan, means: dict[str, torch.Tensor]) -> ArchChanges:
    """Fold each removed channel's mean (``means``: consumer path -> mean of each input channel, see
    :func:`edgeprune.prune.calibrate.measure_channels`) into the bias of every conv or linear that reads it, in
    place, before surgery. A channel that is constant then leaves the output unchanged (exactly, except where a
    padded conv's window covers its zero padding). A layer without a bias gets one: returned for the arch spec."""
    added: ArchChanges = {}
    for path, kinds in removed_slices(graph, plan).items():
        for kind in (CONV_IN, LINEAR_IN, RNN_IN):
            if kind not in kinds:
                continue
            if path not in means:
                raise PlanError(f"no calibration mean for {path}, which reads removed channels: measure the "
                                "channels of this model (edgeprune.prune.calibrate.measure_channels)")  # fmt: skip
            module = model.get_submodule(path)
            if kind == RNN_IN:
                fold_recurrent(module, sorted(kinds[kind]), means[path])
                continue
            delta = removed_contribution(module, kind, sorted(kinds[kind]), means[path])
            if delta is None:
                continue
            if module.bias is None:
                module.bias = nn.Parameter(delta.clone(), requires_grad=module.weight.requires_grad)
                added[path] = {"bias": True}
            else:
                module.bias.data += delta
    return added


def shrink(model: nn.Module, graph: ChannelGraph, plan: Plan,
           means: dict[str, torch.Tensor] | None = None) -> tuple[nn.Module, ArchChanges]:  # fmt: skip
    """Return a physically smaller copy of ``model`` and the architecture changes made.

    ``means`` (consumer path -> mean of each input channel on calibration images): the removed channels' means
    are folded into the layers that read them (:func:`compensate`) instead of being dropped as zeros.
    The original is untouched. Raises :class:`PlanError` (before any change) when the plan does not fit.
    """
    plan.validate(graph)
    pruned = copy.deepcopy(model)
    changes: ArchChanges = {}
    with torch.no_grad():
        added = compensate(pruned, graph, plan, means) if means is not None else {}
        for key, kinds in removed_slices(graph, plan).items():
            if PARAM in kinds:
                path, shape = shrink_param(pruned, key, kinds[PARAM])
                changes[path] = {"param_shape": list(shape)}
                continue
            module = pruned.get_submodule(key)
            changes[key] = {"type": type(module).__name__, **_surgery_for(module)(module, kinds)}
        for gid, gone in plan.removed(graph).items():
            if len(gone) == graph.groups[gid].size:  # validate() allowed it: a removable branch
                changes.update(remove_branch(pruned, graph.branches[gid]))
        for path, attrs in rewrite_split_widths(pruned, graph, plan).items():
            changes.setdefault(path, {"type": type(pruned.get_submodule(path)).__name__}).update(attrs)
        for path, attrs in added.items():
            if "replaces" not in changes.get(path, {}):  # a removed branch's tail keeps its bias in its constant
                changes[path].update(attrs)
    return pruned, changes


def rewrite_split_widths(model: nn.Module, graph: ChannelGraph, plan: Plan) -> ArchChanges:
    """Set each attribute that sizes a split (graph.sizes, see edgeprune.graph.splits) to its pruned width.

    Returns module path -> {attribute: new value} for the arch spec."""
    removed = {gid: set(gone) for gid, gone in plan.removed(graph).items()}
    out: ArchChanges = defaultdict(dict)
    for s in graph.sizes:
        width = sum(1 for p in s.positions if p is None or p[1] not in removed.get(p[0], ()))
        if width == 0:
            raise PlanError(f"plan removes every channel of a split part sized by {s.path}.{s.attr}")
        module = model.get_submodule(s.path)
        if s.index is None:
            value = width * s.scale
        else:  # one element of a list or tuple attribute
            items = list(getattr(module, s.attr))
            items[s.index] = width
            value = type(getattr(module, s.attr))(items)
        setattr(module, s.attr, value)
        out[s.path][s.attr] = list(value) if isinstance(value, tuple) else value
    return dict(out)


def _folded_constant(conv: nn.Module, norm: nn.Module | None) -> torch.Tensor:
    """What ``norm(conv(nothing))`` outputs per channel: the bias, through the norm's inference affine."""
    value = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(conv.out_channels)
    if norm is not None:
        mean = norm.running_mean if norm.running_mean is not None else torch.zeros_like(value)
        var = norm.running_var if norm.running_var is not None else torch.ones_like(value)
        value = (value - mean) / torch.sqrt(var + norm.eps)
        if norm.weight is not None:
            value = value * norm.weight.detach() + norm.bias.detach()
    return value


def remove_branch(model: nn.Module, branch: Branch) -> ArchChanges:
    """Replace an emptied residual branch (already shrunk to no inner channels) by its constant output.

    The convs before the tail become :class:`EmptyChannels`, their norms ``Identity``; the tail conv becomes
    a :class:`BranchConstant` holding its bias through the tail norm and activation, which become ``Identity``.
    """
    changes: ArchChanges = {}

    def replace(path: str, new: nn.Module, **attrs) -> None:
        changes[path] = {"type": type(new).__name__, "replaces": type(model.get_submodule(path)).__name__, **attrs}
        model.set_submodule(path, new)

    tail = model.get_submodule(branch.tail)
    norm = model.get_submodule(branch.tail_norm) if branch.tail_norm else None
    geometry = EmptyChannels.geometry_of(tail)
    constant = BranchConstant(tail.out_channels, **geometry)
    value = _folded_constant(tail, norm)
    if branch.tail_act:
        with torch.no_grad():
            value = model.get_submodule(branch.tail_act)(value)
    constant.value.data.copy_(value)
    for path in branch.inner_layers:
        module = model.get_submodule(path)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            replace(path, nn.Identity())
        else:
            g = EmptyChannels.geometry_of(module)
            replace(path, EmptyChannels(**g), **g)
    replace(branch.tail, constant, channels=constant.channels, **geometry)
    for path in (branch.tail_norm, branch.tail_act):
        if path:
            replace(path, nn.Identity())
    return changes
