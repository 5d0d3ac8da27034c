"""The one latency model: what a network, pruned or not, costs on a target, from the target's profile.

A :class:`~edgeprune.latency.profile.Profile` is data; this is the formula. The planner prices its steps
with it (it is the "latency" :class:`~edgeprune.latency.costs.LayerCost`), ``validate`` and ``profile check``
predict whole models with it, and the fitters (calibration, in-network widths, removal) take the layer sums
they fit from it::

    ms = scale * sum(term of each layer) + (offset_ms when the offset is not shared per layer)
    term = layer ms + (ms_per_mb * MB + ms_per_mmac * MMACs) / scale + share   for a layer that runs
         = (1 - s) * its dense term      for a removed layer (s: its removal scale, else 1)
    layer ms = table lookup at (cin, cout), with the model's in-network width correction,
               + the misalignment term of a layer off the runtime's channel blocking

``scale``, ``offset_ms``, ``ms_per_mb``, ``ms_per_mmac``: the model's calibration (:mod:`.calibration`; the
layer ms are left out where it found the tables predict worse than the activations alone); MB: the layer's
input and output activations; MMACs: its multiply-accumulates; ``share``: the offset's part per layer of the
dense model, over ``scale``. Without a calibration line, ms is the plain sum of layer ms.

Under a MACs or parameter budget the planner ranks its cuts by :meth:`LatencyModel.ranking`: the same terms
without the activation and MACs ones wherever the layer tables are kept. Plans that meet such a budget have about
the same MACs, so those terms price them alike; ranked by them, MobileNet-V2's plans ran slower
(docs/benchmarks/targets.md, "Ranked by the tables, priced by the calibration").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property

from edgeprune.latency.layers import Geometry, Layer, layer_mmacs, on_blocking
from edgeprune.latency.profile import Calibration, Profile, ProfileError, calibration_name, measure_hint


@dataclass
class Prediction:
    """A network's predicted latency: ``ms`` is the calibrated sum of the ``per_layer`` terms."""

    ms: float
    per_layer: dict[str, float]  # layer path -> its term of the layer sum (before the calibration line)
    extrapolated: list[str]  # "path (cin->cout)" of layers outside their table's grid (clamped to it)
    calibrated: bool  # the model has a calibration line in the profile


def misaligned(g: Geometry, cin: int, cout: int, align: int) -> bool:
    """Whether a conv's channels are off the runtime's channel blocking (linears are not blocked). A count
    that divides the blocking (4 of 8) is on it, as the planner has it: measured on cpu-ort, ResNet-56's
    stage 1 at 4 channels ran 9 % faster end to end, where the term charged it as misaligned."""
    return g.op != "linear" and not (on_blocking(cin, align) and on_blocking(cout, align))


def activation_mb(g: Geometry, cin: int, cout: int) -> float:
    """MB of a layer's input and output activations: what a layout reorder around it would move."""
    size = 2 if g.dtype == "fp16" else 4
    out_pixels = -(-g.h // g.stride) * -(-g.w // g.stride)
    return g.batch * (cin * g.h * g.w + cout * out_pixels) * size / 2**20


def calibration_terms_ms(cal: Calibration, layer: Layer, cin: int, cout: int) -> float:
    """What a calibration's activation and MACs terms charge one running layer at (cin, cout), beside its table."""
    ms = cal.ms_per_mb * activation_mb(layer.geometry, cin, cout) if cal.ms_per_mb else 0.0
    return ms + (cal.ms_per_mmac * layer_mmacs(layer, cin, cout) if cal.ms_per_mmac else 0.0)


class LatencyModel:
    """Predicted latency of ``model_name``'s layers, at any widths, from ``profile`` (see the module docstring).

    Lookups are cached: build a new model for a changed profile.
    """

    kind, unit = "latency", "ms"

    def __init__(self, profile: Profile, model_name: str = "", side: int | None = None) -> None:
        self.profile, self.model_name, self.side = profile, model_name, side
        self.ranks = False  # True in the copy ranking() returns: the calibration's terms left out of each layer
        line = calibration_name(model_name, side)
        self.calibration = profile.calibration.get(line)  # the line of this input size
        self.block, self.use_scan, self.misalign = profile.lookup_for(line)
        self.share = self._offset_share()
        self._cache: dict[tuple, tuple[float, bool]] = {}
        self.extrapolated: set[str] = set()  # every width priced so far outside its table (the planner reports it)

    def ranking(self) -> LatencyModel:
        """This model as the planner ranks cuts by it under a MACs or parameter budget: the layer tables, scaled,
        without the calibration's activation and MACs terms, unless the calibration leaves the tables out (then its
        terms are all it has)."""
        cal = self.calibration
        if self.ranks or cal is None or not cal.tables or not (cal.ms_per_mb or cal.ms_per_mmac):
            return self
        # a shallow copy shares the table lookups (the same either way) and the set of extrapolated widths
        twin = copy.copy(self)
        twin.ranks = True
        return twin

    def _offset_share(self) -> float:
        """The calibration offset's part per layer of the dense model (the points' first plan), over the scale.

        The points prune channels only, so every layer runs in each of them and the offset could as well be
        a constant. Counted per layer, a layer that stops running (a removed residual branch) takes its
        share with it; what its removal really saves is then measured (latency/removal.py). 0 without points:
        the offset is then added once, as a constant.
        """
        cal = self.calibration
        layers = cal.points[0].get("layers") if cal and cal.points else None
        return cal.offset_ms / len(layers) / cal.scale if layers and cal.scale else 0.0

    def width_correction(self, layer: Layer) -> tuple[float, int, int] | None:
        """(scale, dense cin, dense cout) of ``layer`` when its geometry has an in-network scale in this model."""
        entry = self.profile.width_scale.get(self.model_name)
        scale = entry["scales"].get(layer.geometry.key) if entry else None
        if scale is None:
            return None
        ref = entry["dense"].get(layer.path)
        if ref is None or ref[0] != layer.geometry.key:
            return None  # a layer the fit never saw (another model under this name): its table as measured
        return scale, ref[1], ref[2]

    def misalign_ms(self, g: Geometry, cin: int, cout: int) -> float:
        """What a layer off the runtime's channel blocking costs beyond its table entry (0 when aligned)."""
        m = self.misalign
        if m and misaligned(g, cin, cout, m["align"]):
            return m["ms_per_mb"] * activation_mb(g, cin, cout) + m["ms_per_layer"]
        return 0.0

    def layer_ms(self, layer: Layer, cin: int, cout: int) -> tuple[float, bool]:
        """A running layer's ms at (cin, cout) before calibration, and whether its table extrapolated."""
        correction = self.width_correction(layer)
        # layers of one geometry share a cost unless the model's width correction sets them apart
        key = (layer.geometry.key, cin, cout, correction)
        if key not in self._cache:
            self._cache[key] = self._lookup(layer, cin, cout, correction)
        return self._cache[key]

    def _lookup(self, layer: Layer, cin: int, cout: int, correction: tuple | None) -> tuple[float, bool]:
        p = self.profile
        table = p.tables.get(layer.geometry.key)
        if table is None:
            raise ProfileError(
                f"layer {layer.path} ({layer.geometry.key}) is not in the profile: profile this model first "
                f"({measure_hint(p.target.get('name', 'TARGET'), self.model_name, self.side)})"
            )
        ms, outside = table.lookup(cin, cout, self.use_scan, self.block)
        if correction is not None:  # the model's saving from its own dense widths, scaled
            scale, dense_cin, dense_cout = correction
            dense, _ = table.lookup(dense_cin, dense_cout, self.use_scan, self.block)
            ms = dense + scale * (ms - dense)
        return ms + self.misalign_ms(layer.geometry, cin, cout), outside

    def layer(self, layer: Layer, cin: int, cout: int) -> float:
        """The layer's term of the layer sum at (cin, cout); at width 0 (its residual branch removed), the part
        of its dense term that removing it leaves: (1 - s) with the model's removal scale s, else nothing."""
        if cin == 0 or cout == 0:
            s = self.profile.removal_scale.get(self.model_name, {}).get(layer.geometry.key)
            return 0.0 if s is None else (1 - s) * self.layer(layer, layer.cin, layer.cout)
        if self.layer_ms(layer, cin, cout)[1]:
            self.extrapolated.add(f"{layer.path} ({cin}->{cout})")
        return self._term(layer, cin, cout)

    def _term(self, layer: Layer, cin: int, cout: int) -> float:
        """A running layer's term, without flagging its extrapolation (see :meth:`layer`)."""
        ms = self.layer_ms(layer, cin, cout)[0]
        cal = self.calibration
        if cal is None:
            return ms + self.share
        # over the scale, like the tables' ms
        extra = 0.0 if self.ranks else calibration_terms_ms(cal, layer, cin, cout)
        return (ms if cal.tables else 0.0) + (extra / cal.scale if extra else 0.0) + self.share

    def total(self, layer_sum: float) -> float:
        """End-to-end ms from the sum of the layers' terms: the model's calibration line, if it has one.

        Below the lowest table sum the line was fitted on, a line with a negative offset runs towards zero ms;
        there the prediction is at least the lowest point's scaled by the table sum (proportional, through the
        origin), the most the runs it saw support."""
        cal = self.calibration
        if cal is None:
            return layer_sum
        ms = cal.scale * layer_sum + (0.0 if self.share else cal.offset_ms)
        knee = self.knee
        tables = self.tables_sum(layer_sum)
        if knee and 0 < tables < knee[0]:
            ms = max(ms, knee[1] * tables / knee[0])
        return ms

    def tables_sum(self, layer_sum: float) -> float:
        """The layer sum without the offset's shares (the dense model's): the x-axis the calibration line was
        fitted along."""
        cal = self.calibration
        return layer_sum - (cal.offset_ms / cal.scale if self.share else 0.0)

    @cached_property
    def knee(self) -> tuple[float, float] | None:
        """(tables sum, line ms) at the calibration point with the lowest tables sum, where the line stops being
        fitted and the proportional floor of :meth:`total` starts; None without recorded layers."""
        cal = self.calibration
        rows = [self.profile.model_layers(self.model_name, p) for p in (cal.points if cal else []) if "layers" in p]
        try:  # the runs' widths are not the plan's: they flag no extrapolation
            low = min((sum(self._term(x, x.cin, x.cout) for x in ls) for ls in rows), default=0.0)
        except ProfileError:  # a run with a layer the tables lack: the line stands alone, as it was fitted
            return None
        if not low:
            return None
        line = cal.scale * low + (0.0 if self.share else cal.offset_ms)
        return (self.tables_sum(low), line) if self.tables_sum(low) > 0 and line > 0 else None

    def layers_ms(self, layers: list[Layer]) -> float:
        """Summed ms of ``layers`` at their own widths, before calibration: what a calibration line is fitted on."""
        return sum(self.layer_ms(x, x.cin, x.cout)[0] for x in layers)

    def predict(self, layers: list[Layer]) -> Prediction:
        """A network's predicted ms from its layers, at their own widths."""
        return self._predict([(x, x.cin, x.cout) for x in layers])

    def predict_pruned(self, dense: list[Layer], pruned: list[Layer]) -> Prediction:
        """A pruned network's predicted ms as the planner counts it: its layers matched to the ``dense`` ones by
        path, a dense layer it no longer has (one of a removed residual branch) priced as removed. A network
        with layers the dense one lacks (another network) is predicted from its own layers."""
        now = {x.path: x for x in pruned}
        if set(now) - {x.path for x in dense}:
            return self.predict(pruned)
        return self._predict([(x, now[x.path].cin, now[x.path].cout) if x.path in now else (x, 0, 0) for x in dense])

    def _predict(self, rows: list[tuple[Layer, int, int]]) -> Prediction:
        per_layer: dict[str, float] = {}
        layer_sum, outside = 0.0, []
        for x, cin, cout in rows:
            term = self.layer(x, cin, cout)
            layer_sum += term
            per_layer[x.path] = per_layer.get(x.path, 0.0) + term
            if cin and cout and self.layer_ms(x, cin, cout)[1]:
                outside.append(f"{x.path} ({cin}->{cout})")
        return Prediction(self.total(layer_sum), per_layer, outside, self.calibration is not None)
