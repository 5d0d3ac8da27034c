"""What a planner counts per layer: profiled latency, MACs or parameters, at any channel widths."""

from __future__ import annotations

import math
from typing import Protocol

from edgeprune.latency.layers import Layer
from edgeprune.latency.profile import Profile, ProfileError


class LayerCost(Protocol):
    """Cost of one conv/linear layer at given channel counts, and the model total from the layer sum."""

    kind: str  # "latency" | "macs" | "params"
    unit: str

    def layer(self, layer: Layer, cin: int, cout: int) -> float: ...

    def total(self, layer_sum: float) -> float: ...


def _per_group_inputs(layer: Layer, cin: int) -> int:
    op = layer.geometry.op
    return 1 if op == "dwconv" else layer.geometry.group_width if op == "gconv" else cin


class MacsCost:
    """Multiply-accumulates of convs and linears (what fvcore counts for them; norms and adds left out)."""

    kind, unit = "macs", "MMACs"

    def layer(self, layer: Layer, cin: int, cout: int) -> float:
        g = layer.geometry
        if g.op == "linear":
            return g.batch * cin * cout / 1e6
        pixels = math.ceil(g.h / g.stride) * math.ceil(g.w / g.stride)
        return g.batch * pixels * g.kernel**2 * _per_group_inputs(layer, cin) * cout / 1e6

    def total(self, layer_sum: float) -> float:
        return layer_sum


class ParamsCost:
    """Weights of convs and linears (biases and norms left out)."""

    kind, unit = "params", "Mparams"

    def layer(self, layer: Layer, cin: int, cout: int) -> float:
        k = 1 if layer.geometry.op == "linear" else layer.geometry.kernel**2
        return k * _per_group_inputs(layer, cin) * cout / 1e6

    def total(self, layer_sum: float) -> float:
        return layer_sum


class LatencyCost:
    """Milliseconds from a target's latency profile, with the model's calibration line when it has one."""

    kind, unit = "latency", "ms"

    def __init__(self, profile: Profile, model_name: str) -> None:
        self.profile, self.model_name = profile, model_name
        self.calibration = profile.calibration.get(model_name)
        # the offset goes with the layers that run (Calibration.layer_offset_ms), so it is added per layer
        self.share = self.calibration.layer_offset_ms / self.calibration.scale if self.calibration else 0.0
        self._cache: dict[tuple[str, int, int], float] = {}
        self.extrapolated: set[str] = set()

    def layer(self, layer: Layer, cin: int, cout: int) -> float:
        if cin == 0 or cout == 0:  # a layer of a removed residual branch does not run
            s = self.profile.removal_scale.get(self.model_name, {}).get(layer.geometry.key)
            return 0.0 if s is None else (1 - s) * self.layer(layer, layer.cin, layer.cout)
        # layers of one geometry share a cost unless the model's width correction sets them apart
        key = (layer.geometry.key, cin, cout, self.profile.width_correction(self.model_name, layer))
        if key not in self._cache:
            ms, outside = self.profile.layer_ms(layer, cin, cout, self.model_name)
            if outside:
                self.extrapolated.add(f"{layer.path} ({cin}->{cout})")
            self._cache[key] = ms
        return self._cache[key] + self.share

    def total(self, layer_sum: float) -> float:
        cal = self.calibration
        if cal is None:
            return layer_sum
        return cal.scale * layer_sum + (0.0 if self.share else cal.offset_ms)


def make_cost(kind: str, profile: Profile | None = None, model_name: str = "") -> LayerCost:
    """The cost model for a budget or ranking kind; latency needs a profile."""
    if kind == "latency":
        if profile is None:
            raise ProfileError("a latency budget or ranking needs the target's latency profile")
        return LatencyCost(profile, model_name)
    if kind == "macs":
        return MacsCost()
    if kind == "params":
        return ParamsCost()
    raise ValueError(f"unknown cost kind {kind!r} (latency, macs or params)")


def predict_pruned_ms(profile: Profile, model_name: str, dense: list[Layer], pruned: list[Layer]) -> float:
    """A pruned model's predicted ms as the planner counts it: its layers matched to the dense model's by path,
    and a dense layer it no longer has (one of a removed residual branch) priced as removed. A model whose
    layers are not the dense model's (another network) is predicted from its own layers."""
    now = {x.path: x for x in pruned}
    if set(now) - {x.path for x in dense}:
        return profile.predict(pruned, model_name).ms
    cost = LatencyCost(profile, model_name)
    return cost.total(sum(cost.layer(x, now[x.path].cin, now[x.path].cout) if x.path in now else cost.layer(x, 0, 0)
                          for x in dense))  # fmt: skip
