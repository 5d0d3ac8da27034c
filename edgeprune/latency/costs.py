"""What a planner counts per layer: profiled latency (:class:`~edgeprune.latency.model.LatencyModel`), MACs or
parameters, at any channel widths."""

from __future__ import annotations

from typing import Protocol

from edgeprune.latency.layers import Layer, inputs_per_group, layer_mmacs
from edgeprune.latency.model import LatencyModel
from edgeprune.latency.profile import Profile, ProfileError


class LayerCost(Protocol):
    """Cost of one conv/linear layer at given channel counts, and the model total from the layer sum."""

    kind: str  # "latency" | "macs" | "params"
    unit: str

    def layer(self, layer: Layer, cin: int, cout: int) -> float: ...

    def total(self, layer_sum: float) -> float: ...


class MacsCost:
    """Multiply-accumulates of convs and linears (what fvcore counts for them; norms and adds left out)."""

    kind, unit = "macs", "MMACs"

    def layer(self, layer: Layer, cin: int, cout: int) -> float:
        return layer_mmacs(layer, cin, cout)

    def total(self, layer_sum: float) -> float:
        return layer_sum


class ParamsCost:
    """Weights of convs and linears (biases and norms left out)."""

    kind, unit = "params", "Mparams"

    def layer(self, layer: Layer, cin: int, cout: int) -> float:
        return layer.geometry.taps * inputs_per_group(layer, cin) * cout / 1e6

    def total(self, layer_sum: float) -> float:
        return layer_sum


def make_cost(kind: str, profile: Profile | None = None, model_name: str = "", side: int | None = None) -> LayerCost:
    """The cost model for a budget or ranking kind; latency needs a profile (``side``: the square input side,
    which picks the model's calibration line)."""
    if kind == "latency":
        if profile is None:
            raise ProfileError("a latency budget or ranking needs the target's latency profile")
        return LatencyModel(profile, model_name, side)
    if kind == "macs":
        return MacsCost()
    if kind == "params":
        return ParamsCost()
    raise ValueError(f"unknown cost kind {kind!r} (latency, macs or params)")

