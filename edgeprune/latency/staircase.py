"""The latency staircase: channel counts where a group's latency actually steps, and its plot."""

from __future__ import annotations

import os

from edgeprune.graph.groups import CONV_OUT, LINEAR_OUT, ChannelGraph
from edgeprune.latency.layers import Layer
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import Profile


def group_staircases(
    graph: ChannelGraph, layers: list[Layer], profile: Profile, tol_pct: float = 3.0
) -> dict[int, list[int]]:
    """Per prunable group: widths right before a latency step, from its producers' dense scans.

    The planner snaps group widths to these: a width between two stairs costs as much as the next one up.
    """
    by_path = {layer.path: layer for layer in layers}
    out: dict[int, list[int]] = {}
    for group in graph.prunable_groups:
        widths: set[int] = set()
        for path, kinds in group.modules().items():
            layer = by_path.get(path)
            if layer is None or not kinds & {CONV_OUT, LINEAR_OUT} or layer.geometry.op == "gconv":
                continue  # grouped convs: a unit is a whole conv group, not one channel
            table = profile.tables.get(layer.geometry.key)
            if table is not None and table.scan_c and table.scan_c[-1] == layer.cout:
                widths.update(table.efficient_widths(tol_pct))
        if widths:
            out[group.id] = sorted(w for w in widths if w <= group.size)
    return out


def plot_staircases(profile: Profile, layers: list[Layer], path: str | os.PathLike, top: int = 6) -> list[str]:
    """PNG of latency vs channels (dense scans) for the ``top`` costliest layer geometries of a model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_layer = LatencyModel(profile).predict(layers).per_layer  # tables as measured: no model's fitted terms
    cost: dict[str, float] = {}
    for layer in layers:
        cost[layer.geometry.key] = cost.get(layer.geometry.key, 0.0) + per_layer[layer.path]
    keys = [k for k in sorted(cost, key=cost.get, reverse=True) if profile.tables[k].scan_c][:top]
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * max(1, len(keys))), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        t = profile.tables[key]
        ax.plot(t.scan_c, t.scan_ms, marker=".", lw=1)
        for w in t.efficient_widths():
            ax.axvline(w, color="tab:green", alpha=0.3, lw=0.8)
        ax.set_title(key, fontsize=8)
        ax.set_ylabel("ms")
    axes[-1, 0].set_xlabel("output channels (green: widths right before a latency step)")
    device = profile.device.get("gpu") or profile.device.get("cpu")
    fig.suptitle(f"{profile.target.get('name')} on {device}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return keys


