"""Channel-id tensors and the union-find over channel ids.

Every traced activation carries an int64 *id tensor* beside it: entry ``p`` names the channel (a
global id) whose value sits at position ``p``; 0 means "no channel" (a zero or constant). Id tensors
are stored broadcast-compressed: a dim along which the ids do not vary has size 1, so a normal NCHW
activation costs C integers, not N*C*H*W.

Channels that must be pruned together are merged in :class:`ChannelUnion`.
"""

from __future__ import annotations

import numpy as np
import torch

NO_CHANNEL = 0


class ChannelUnion:
    """Union-find over channel ids, with per-id freeze reasons and members."""

    def __init__(self) -> None:
        self._parent: list[int] = [0]  # id 0 is the "no channel" sentinel
        self.frozen: dict[int, str] = {}
        self.space_of: list[int] = [-1]
        self.summed: set[int] = set()  # ids added to (or subtracted from) another channel: residual streams

    def new_ids(self, count: int, space: int) -> torch.Tensor:
        """Allocate ``count`` fresh ids belonging to ``space``; returns them as a 1-D tensor."""
        start = len(self._parent)
        self._parent.extend(range(start, start + count))
        self.space_of.extend([space] * count)
        return torch.arange(start, start + count, dtype=torch.long)

    def find(self, x: int) -> int:
        parent = self._parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        if a == NO_CHANNEL or b == NO_CHANNEL:
            return
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # Keep the older id as root so units sort by first appearance.
            if ra < rb:
                self._parent[rb] = ra
            else:
                self._parent[ra] = rb

    def union_tensors(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """Merge ``a[p]`` with ``b[p]`` at every (broadcast) position ``p``."""
        if a is b or (a.shape == b.shape and torch.equal(a, b)):
            return
        a, b = (t.reshape(-1) for t in torch.broadcast_tensors(a, b))
        keep = (a != b) & (a != NO_CHANNEL) & (b != NO_CHANNEL)
        if bool(keep.any()):
            n = len(self._parent)
            codes = torch.unique(a[keep] * n + b[keep])  # one int per pair: 1-D unique is cheap
            for x, y in zip((codes // n).tolist(), (codes % n).tolist()):
                self.union(x, y)

    def freeze(self, ids: torch.Tensor, reason: str) -> None:
        """Mark every channel in ``ids`` as not prunable, keeping the first reason given."""
        for v in torch.unique(ids).tolist():
            if v != NO_CHANNEL:
                self.frozen.setdefault(int(v), reason)

    def roots(self) -> list[int]:
        """The root of every id, computed for all ids at once (pointer jumping)."""
        parent = np.asarray(self._parent, dtype=np.int64)
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                return parent.tolist()
            parent = grand

    def __len__(self) -> int:
        return len(self._parent)


def compress(ids: torch.Tensor) -> torch.Tensor:
    """Shrink every dim along which ``ids`` is constant to size 1."""
    for d in range(ids.ndim):
        if ids.shape[d] > 1:
            first = ids.narrow(d, 0, 1)
            if bool((ids == first).all()):
                ids = first
    return ids.contiguous()


def expand_full(ids: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Materialize a compressed id tensor at its logical ``shape``."""
    return ids.expand(shape).contiguous()


def along(vector: torch.Tensor, dim: int, ndim: int) -> torch.Tensor:
    """A compressed id tensor holding ``vector`` along ``dim`` of an ``ndim``-D tensor."""
    dim = dim % ndim
    shape = [1] * ndim
    shape[dim] = vector.numel()
    return vector.reshape(shape)


def varying_dims(ids: torch.Tensor) -> list[int]:
    """Dims along which a compressed id tensor holds different channels."""
    return [d for d in range(ids.ndim) if ids.shape[d] > 1]


def position_reps(cu: ChannelUnion, ids: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Merge all channels found at each index along ``dim``; returns one representative per index.

    A consumer that takes ``dim`` as its channel axis removes a whole index at once, so every channel
    appearing at that index (normally exactly one) must go with it.
    """
    ndim = ids.ndim
    dim = dim % ndim
    if ids.numel() == size and ids.shape[dim] == size:  # the usual case: one channel per index
        return ids.reshape(-1).clone()
    full_dim = ids.expand(*[size if d == dim else ids.shape[d] for d in range(ndim)])
    rows = full_dim.movedim(dim, 0).reshape(size, -1)
    reps = rows.max(dim=1).values  # any non-zero id of the row
    if rows.shape[1] > 1:
        cu.union_tensors(reps[:, None], rows)
    return reps.clone()
