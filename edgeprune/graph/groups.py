"""The artifacts of the graph stage: members, units (channels) and channel groups."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np

# Member kinds: which tensor slice a channel owns in a module.
CONV_OUT, CONV_IN = "conv_out", "conv_in"
LINEAR_OUT, LINEAR_IN = "linear_out", "linear_in"
NORM = "norm"  # BatchNorm per-channel affine + running stats
PARAM = "param"  # a parameter used directly in forward, sliced along `dim`
REMAP_IN, REMAP_OUT = "remap_in", "remap_out"  # ChannelRemap (option-A shortcut)
RNN_IN = "rnn_in"  # a recurrent layer's (LSTM, GRU, RNN) input features: its first layer's input weights

# Members that read channels: the oracle zeroes these, shrink drops their input slices.
CONSUMER_KINDS = (CONV_IN, LINEAR_IN, REMAP_IN, RNN_IN)
# Consumers that read their channels along the last dim (features), not dim 1.
LAST_DIM_KINDS = (LINEAR_IN, RNN_IN)


def weight_dims(module) -> tuple[int, int]:
    """(output dim, input dim) of a conv's or linear's weight: (0, 1), or (1, 0) for a transposed conv, whose
    weight is laid out (in, out, *kernel)."""
    return (1, 0) if getattr(module, "transposed", False) else (0, 1)


def rnn_input_weights(module) -> list[str]:
    """The parameters of a recurrent layer (``nn.RNNBase``) that read its input features, one per direction:
    the input-to-hidden weights of its first layer (the later layers read the hidden state)."""
    return ["weight_ih_l0"] + (["weight_ih_l0_reverse"] if module.bidirectional else [])


class Member(NamedTuple):
    """One slice that belongs to a channel: ``kind`` of module ``path`` at ``index`` (along ``dim``)."""

    kind: str
    path: str
    index: int
    dim: int = 0

    def __str__(self) -> str:
        return f"{self.path}[{self.kind}:{self.index}]"


# A member stored compactly: (block number, index), where blocks[block] = (kind, path, dim).
MemberRef = tuple[int, int]


@dataclass(frozen=True)
class MemberTable:
    """Every member of a graph, sorted so that each unit's members are one contiguous row range."""

    blocks: list[tuple[str, str, int]]  # block number -> (kind, path, dim)
    block: np.ndarray  # per row: block number
    index: np.ndarray  # per row: slice index within the block


@dataclass(slots=True)
class Unit:
    """One prunable channel of a group: every slice removed together when it is pruned."""

    table: MemberTable
    start: int
    end: int
    frozen: str | None = None

    @property
    def refs(self) -> list[MemberRef]:
        rows = slice(self.start, self.end)
        return list(zip(self.table.block[rows].tolist(), self.table.index[rows].tolist()))

    @property
    def members(self) -> list[Member]:
        blocks = self.table.blocks
        return [Member(blocks[b][0], blocks[b][1], i, blocks[b][2]) for b, i in self.refs]


@dataclass
class ChannelGroup:
    """A set of channels that share one pruning decision per channel (unit)."""

    id: int
    units: list[Unit]
    frozen: str | None = None  # set when no unit of the group may be pruned
    summed: bool = False  # some of its channels are added to others (a residual add), not only gated
    parallel: bool = False  # its writers are branches of one input, summed (no identity path): not a stream

    @property
    def size(self) -> int:
        return len(self.units)

    @property
    def prunable(self) -> bool:
        return self.frozen is None

    @property
    def prunable_units(self) -> list[int]:
        return [i for i, u in enumerate(self.units) if u.frozen is None]

    @property
    def shared(self) -> bool:
        """Whether several layers write these channels and an addition sums them: a residual stream.

        Depthwise convs read and write the same channels: they pass a group through and do not count. A
        squeeze-excitation gate's last layer also writes the channels, but the gate multiplies: without a sum
        the group is an ordinary one. Branches of one input summed without an identity path (a 3x3 and a 1x1
        conv of the same tensor, selective-kernel paths) feed only the next layer: an ordinary group too.
        """
        return self.summed and not self.parallel and len(self.writers()) > 1

    def writers(self) -> list[str]:
        """The layers that write these channels and do not read them (a depthwise conv does both)."""
        writes, reads = {CONV_OUT, LINEAR_OUT}, {CONV_IN, LINEAR_IN}
        return [path for path, kinds in self.modules().items() if kinds & writes and not kinds & reads]

    def modules(self) -> dict[str, set[str]]:
        """Module path -> member kinds present in the group."""
        out: dict[str, set[str]] = {}
        if self.units:
            table = self.units[0].table
            rows = np.concatenate([table.block[u.start : u.end] for u in self.units])
            for b in np.unique(rows).tolist():
                out.setdefault(table.blocks[b][1], set()).add(table.blocks[b][0])
        return out

    def describe(self) -> str:
        mods = self.modules()
        shown = ", ".join(f"{p}({'/'.join(sorted(k))})" for p, k in list(mods.items())[:6])
        more = f", +{len(mods) - 6} more" if len(mods) > 6 else ""
        return shown + more


class SizeAttr(NamedTuple):
    """A module attribute that sets a split width (``torch.split(x, self.width)``): the pruned model's value is
    the number of its positions whose unit is kept."""

    path: str  # module
    attr: str
    index: int | None  # element of a list attribute; None for an int
    positions: tuple[tuple[int, int] | None, ...]  # (group id, unit index) per position; None: never removed
    scale: int = 1  # the attribute holds this multiple of the width


@dataclass
class ChannelGraph:
    """Everything pruning needs to know about a model's channel structure."""

    model_name: str
    input_shape: tuple[int, ...]
    groups: list[ChannelGroup]
    param_shapes: dict[str, tuple[int, ...]]
    model_kwargs: dict = field(default_factory=dict)  # what create_model needs to rebuild it
    # group id -> the residual branch that emptying the group removes (edgeprune.graph.branches.Branch)
    branches: dict = field(default_factory=dict)
    sizes: list[SizeAttr] = field(default_factory=list)  # split widths that shrink rewrites
    # Python code in forward() that read a traced value, as "file.py:line `code`" -> the values it got there
    traced_values: dict[str, list] = field(default_factory=dict)

    @property
    def prunable_groups(self) -> list[ChannelGroup]:
        return [g for g in self.groups if g.prunable]

    def group(self, group_id: int) -> ChannelGroup:
        if not 0 <= group_id < len(self.groups):
            raise KeyError(f"no channel group {group_id} (the graph has {len(self.groups)})")
        return self.groups[group_id]

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the parameter shapes and the group structure: a plan is valid only for it."""
        digest = hashlib.sha256()
        digest.update(json.dumps(sorted(self.param_shapes.items())).encode())
        if self.groups and self.groups[0].units:
            table = self.groups[0].units[0].table
            digest.update(json.dumps(table.blocks).encode())
            digest.update(table.block.astype(np.int64).tobytes() + table.index.astype(np.int64).tobytes())
        for g in self.groups:
            digest.update(f"{g.id}:{g.size}:{g.frozen is None}".encode())
            digest.update(np.array([(u.start, u.end) for u in g.units], dtype=np.int64).tobytes())
        return digest.hexdigest()[:16]
