"""The trace's merged channels as units, and units that share a channel space as groups."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeprune.graph.groups import CONV_IN, CONV_OUT, LINEAR_IN, LINEAR_OUT, PARAM, ChannelGroup, MemberTable, Unit

if TYPE_CHECKING:
    from edgeprune.graph.trace import TraceContext


def assemble_groups(ctx: TraceContext) -> tuple[list[ChannelGroup], dict[int, tuple[int, int]]]:
    """Turn merged channels into units, and units that share a channel space into groups.

    Returns the groups and, for each unit's root channel, its (group id, unit index)."""
    cu = ctx.cu
    roots, spaces = cu.roots(), cu.space_of
    # Two spaces that share a unit (residual add, concat) belong to one group: union-find over spaces.
    n = max(ctx.n_spaces, 1)
    space_parent = np.arange(n)
    space_arr = np.asarray(spaces)
    codes = np.unique(space_arr[1:] * n + space_arr[np.asarray(roots[1:])])  # 1-D unique: far cheaper than axis=0
    for a, b in zip((codes // n).tolist(), (codes % n).tolist()):
        if a == b:
            continue
        ra, rb = _find(space_parent, a), _find(space_parent, b)
        if ra != rb:
            space_parent[max(ra, rb)] = min(ra, rb)
    table, unit_rows = _member_table(ctx, np.asarray(roots))
    unit_frozen: dict[int, str] = {}
    for channel in sorted(cu.frozen):
        unit_frozen.setdefault(roots[channel], cu.frozen[channel])
    by_space: dict[int, list[int]] = {}
    for r in sorted(unit_rows):
        by_space.setdefault(_find(space_parent, spaces[r]), []).append(r)
    summed = {roots[i] for i in cu.summed}
    groups, unit_at = [], {}
    for space in sorted(by_space):
        units = [Unit(table, *unit_rows[r], unit_frozen.get(r)) for r in by_space[space]]
        if all(m.kind == PARAM for u in units for m in u.members):
            # a parameter whose values no channel op reads (only its device or dtype, as torch's transformer
            # layers check before their fused path): cutting it alone would leave its layer inconsistent
            reason = f"{units[0].members[0].path}: {UNREAD_PARAMETER}"
            units = [Unit(table, *unit_rows[r], unit_frozen.get(r) or reason) for r in by_space[space]]
        frozen = units[0].frozen if all(u.frozen for u in units) else None
        unit_at.update({r: (len(groups), u) for u, r in enumerate(by_space[space])})
        groups.append(ChannelGroup(len(groups), units, frozen, summed=any(r in summed for r in by_space[space])))
    _mark_parallel(groups, ctx.modules, _adders(ctx))
    return groups, unit_at


UNREAD_PARAMETER = "a parameter read in forward by no channel op"


def _adders(ctx: TraceContext) -> set[str]:
    """Layers whose outputs go into a sum (not only through a gate's product)."""
    summed = np.fromiter(ctx.cu.summed, np.int64)
    return {path for (kind, path, _), ids in zip(ctx.blocks, ctx.attached)
            if kind in (CONV_OUT, LINEAR_OUT) and np.isin(ids, summed).any()}  # fmt: skip


def _mark_parallel(groups: list[ChannelGroup], modules: dict, adders: set[str]) -> None:
    """Summed groups whose adding writers all read the same groups, or are one layer summing its own slices
    (ResNeSt's radix splits), and no other layer reads and writes them: parallel branches of one input. A
    residual stream's writers read different tensors, or a later block's layers read the stream and write it
    again (an identity branch); a depthwise conv does so without making a stream. A writer that only gates the
    sum (selective-kernel attention) does not count."""
    members = {g.id: g.modules() for g in groups}
    reads: dict[str, set[int]] = {}
    for g in groups:
        for path, kinds in members[g.id].items():
            if kinds & {CONV_IN, LINEAR_IN}:
                reads.setdefault(path, set()).add(g.id)
    for g in groups:
        writers = g.writers() if g.summed else []
        if len(writers) < 2:
            continue
        adding = [w for w in writers if w in adders]
        inputs = {frozenset(reads.get(w, ())) for w in adding}
        (source,) = inputs if len(inputs) == 1 else (frozenset(),)
        writes = {CONV_OUT, LINEAR_OUT}
        through = [p for p, kinds in members[g.id].items() if kinds & writes and g.id in reads.get(p, ())]
        one_input = len(adding) == 1 or (bool(source) and g.id not in source)
        g.parallel = one_input and all(_depthwise(modules.get(p)) for p in through)


def _depthwise(module) -> bool:
    groups = getattr(module, "groups", 1)
    return groups > 1 and groups == getattr(module, "in_channels", None) == getattr(module, "out_channels", None)


def _member_table(ctx: TraceContext, roots: np.ndarray) -> tuple[MemberTable, dict[int, tuple[int, int]]]:
    """All members sorted by their unit (root channel), and each root's row range (vectorized)."""
    if not ctx.attached:
        return MemberTable(ctx.blocks, np.zeros(0, np.int64), np.zeros(0, np.int64)), {}
    channels = np.concatenate(ctx.attached)
    block = np.concatenate([np.full(len(a), b) for b, a in enumerate(ctx.attached)])
    index = np.concatenate([np.arange(len(a)) for a in ctx.attached])
    owner = roots[channels]
    order = np.argsort(owner, kind="stable")  # stable: members keep their attach (graph) order
    owner = owner[order]
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    ends = np.r_[starts[1:], len(owner)]
    ranges = dict(zip(owner[starts].tolist(), zip(starts.tolist(), ends.tolist())))
    return MemberTable(ctx.blocks, block[order], index[order]), ranges


def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = int(parent[x])
    return x
