"""Settling a stored profile's spikes: table points timed again beside their neighbours, then the lookup and
calibration fitted again on the runs the profile holds (no network is timed).

Profiles measured before a sweep timed its spikes beside their neighbours (:mod:`.sweep`) can hold widths that
one slow spell of the machine inflated; the planner then prices a cut to such a width as costing more than the
layer it replaces. ``edgeprune profile fit TARGET spikes`` runs this.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from edgeprune.latency.profile import Profile
from edgeprune.latency.profiler import choose_lookup_and_calibrate, measured_layers
from edgeprune.latency.tables import settle_table_spikes
from edgeprune.targets import Target


def model_table_keys(profile: Profile, target: Target, names: list[str]) -> list[str]:
    """The keys of the profile's tables that the models' layers are priced from, in first-use order;
    :class:`ProfileError` where the profile lacks some (the model was never profiled)."""
    return list(dict.fromkeys(x.geometry.key for name in names for x in measured_layers(profile, target, name)))


def refit_lookups(profile: Profile) -> Profile:
    """The lookup (channel block, scans, misalignment term) and calibration of every model whose stored runs
    carry their layers, chosen again on those runs as ``profile measure`` chooses them; the others unchanged."""
    points = {name: cal.points for name, cal in profile.calibration.items()
              if cal.points and all("layers" in p for p in cal.points)}  # fmt: skip
    if not points:
        return profile
    fitted = choose_lookup_and_calibrate(profile, points)
    return replace(fitted, calibration={**profile.calibration, **fitted.calibration},
                   lookups={**profile.lookups, **fitted.lookups})  # fmt: skip


def settle_profile_spikes(profile: Profile, target: Target, names: list[str],
                          progress=None) -> tuple[Profile, list[dict]]:  # fmt: skip
    """``profile`` with the spikes of the models' tables timed again beside their neighbours
    (:func:`~edgeprune.latency.tables.settle_table_spikes`) and its lookups refitted (:func:`refit_lookups`);
    and one row per settled point: {"table", "cin", "cout", "stored_ms", "settled_ms"}. ``progress``: called
    with each table's key before it is timed."""
    tables, rows = dict(profile.tables), []
    timing = profile.settings.get("layer_timing", "wall")
    with tempfile.TemporaryDirectory() as tmp:
        for key in model_table_keys(profile, target, names):
            if progress:
                progress(key)
            tables[key], settled = settle_table_spikes(target, key, tables[key], Path(tmp), timing)
            rows += [{"table": key, "cin": p[0], "cout": p[1], "stored_ms": a, "settled_ms": b}
                     for p, (a, b) in settled.items()]  # fmt: skip
    return refit_lookups(replace(profile, tables=tables)), rows


__all__ = ["model_table_keys", "refit_lookups", "settle_profile_spikes"]
