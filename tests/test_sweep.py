"""Width sweeps: two shuffled passes and a deciding third timing outvote an interference burst, keep a step."""

from __future__ import annotations

import pytest

from edgeprune.latency.sweep import SPIKE_ROUNDS, disagree, find_spikes, line_neighbours, run_sweep, settle_spikes


def make_machine(burst: range):
    """A layer whose cost steps from 1.0 to 1.5 ms at 48 channels, timed on a machine where calls number
    ``burst`` (in the order they are made) run twice as slow: another process's burst."""
    calls = []

    def measure(cin: int, cout: int) -> tuple[float, float]:
        calls.append((cin, cout))
        ms = 1.5 if cout >= 48 else 1.0
        return (2 * ms if len(calls) - 1 in burst else ms, 5.0)

    return measure, calls


def test_a_burst_is_outvoted_and_the_real_step_survives():
    widths = list(range(2, 65, 2))
    line = [(64, c) for c in widths]
    measure, calls = make_machine(range(4, 12))
    sweep = run_sweep(line, measure, seed=3)
    assert [sweep.ms(p) for p in line] == [1.5 if c >= 48 else 1.0 for c in widths]
    hit = [p for p in line if sweep.first_ms(p) != sweep.ms(p)]
    assert len(hit) == 8 and set(hit) == set(sweep.retimed)  # the burst's points, each timed a third time
    # shuffled: the burst's eight widths are scattered, not the contiguous run an in-order sweep would show
    assert max(c for _, c in hit) - min(c for _, c in hit) > 2 * 8
    assert len(calls) == 2 * len(line) + len(sweep.retimed)


def test_without_interference_each_width_is_timed_twice_and_the_step_stays():
    line = [(64, c) for c in range(2, 65, 2)]
    measure, calls = make_machine(range(0))
    sweep = run_sweep(line, measure, seed=0)
    assert sweep.retimed == [] and len(calls) == 2 * len(line)
    assert sweep.ms((64, 46)) == 1.0 and sweep.ms((64, 48)) == 1.5 and sweep.spread((64, 48)) == 5.0
    assert not disagree(1.0, 1.09, 0.1) and disagree(1.0, 1.11, 0.1)


def test_the_profiler_measures_tables_by_the_sweep(monkeypatch, tmp_path):
    from edgeprune.latency import tables
    from edgeprune.targets import load_target

    calls = []

    def fake_time_layer(target, g, cin, cout, tmp, timing, settings, built=None):
        calls.append((cin, cout))
        ms = 0.01 * cin * cout / 64 + (0.5 if cout >= 60 else 0.0)  # a real step at 60 channels
        return (3 * ms if 10 <= len(calls) < 20 else ms, 1.0)  # a burst: ten calls in a row

    monkeypatch.setattr(tables, "_time_layer", fake_time_layer)
    key = "conv|b1|8x8|k3|s1|gw0|fp32"
    axis = [8 * k for k in range(1, 9)]
    table = tables.measure_table(load_target("cpu-ort"), key, axis, axis, tmp_path)
    # the burst is outvoted; the step stays (where a point of it stood above its neighbours, timed beside them)
    expected = [[0.01 * ci * co / 64 + (0.5 if co >= 60 else 0.0) for co in axis] for ci in axis]
    assert all(row == pytest.approx(want) for row, want in zip(table.ms, expected))
    assert table.scan_ms == pytest.approx([0.01 * 64 * c / 64 + (0.5 if c >= 60 else 0.0) for c in table.scan_c])
    points = {(ci, co) for ci in axis for co in axis} | {(64, c) for c in table.scan_c}
    assert table.retimed == 10 and table.timed == len(points)
    spike_calls = len(calls) - 2 * len(points) - table.retimed  # the rounds beside neighbours, nothing else
    assert table.spikes > 0 and spike_calls > 0 and spike_calls % SPIKE_ROUNDS == 0


def test_a_corner_of_the_grid_hit_in_both_passes_is_timed_beside_its_row_and_column(monkeypatch, tmp_path):
    """A grid's corner has one neighbour on its row and one on its column: above both, it is a spike."""
    from edgeprune.latency import tables
    from edgeprune.targets import load_target

    seen = {}

    def fake_time_layer(target, g, cin, cout, tmp, timing, settings, built=None):
        seen[cin, cout] = seen.get((cin, cout), 0) + 1
        ms = 0.01 * cin * cout / 64
        return (3 * ms if (cin, cout) == (8, 64) and seen[cin, cout] <= 2 else ms, 1.0)  # both passes slow

    monkeypatch.setattr(tables, "_time_layer", fake_time_layer)
    axis = [8 * k for k in range(1, 9)]
    table = tables.measure_table(load_target("cpu-ort"), "conv|b1|8x8|k3|s1|gw0|fp32", axis, axis, tmp_path)
    assert table.ms[0][-1] == pytest.approx(0.08) and table.spikes >= 1, table.ms[0]
    # its two passes, then its rounds (and, as a neighbour, those of widths a later search finds)
    assert seen[8, 64] >= 2 + SPIKE_ROUNDS and seen[8, 56] >= 2 + SPIKE_ROUNDS and seen[16, 64] >= 2 + SPIKE_ROUNDS


def test_costly_runners_are_built_once_per_point_and_table(monkeypatch, tmp_path):
    """ExecuTorch / torch runners and int8 (quantized) runners are built once per point and timed again in later
    passes; plain ONNX sessions are made fresh for every timing."""
    from edgeprune.latency import tables
    from edgeprune.targets import load_target
    from edgeprune.timing import LatencyStats

    builds = []

    class Runner:
        def run(self, x):
            return x

        def sync(self):
            pass

    def fake_prepare(target, model_or_path, shape):
        builds.append(shape)
        return Runner()

    monkeypatch.setattr(tables, "prepare_runner", fake_prepare)
    monkeypatch.setattr(tables, "measure_latency", lambda runner, x, target: LatencyStats(1.0, 1.0, 1.0, [1.0], 0.0, 3))
    key = "conv|b1|8x8|k3|s1|gw0|fp32"
    axis = [8, 16]
    points = {(ci, co) for ci in axis for co in axis} | {(16, c) for c in tables.scan_widths(
        tables.Geometry.from_key(key), 16)}  # fmt: skip
    tables.measure_table(load_target("cpu-torch"), key, axis, axis, tmp_path)
    assert len(builds) == len(points)  # two passes, one build each
    builds.clear()
    tables.measure_table(load_target("cpu-ort-int8"), key, axis, axis, tmp_path)
    assert len(builds) == len(points)
    builds.clear()
    tables.measure_table(load_target("cpu-ort"), key, axis, axis, tmp_path)
    assert len(builds) == 2 * len(points)


def test_a_shared_table_that_lacks_a_new_models_widths_is_measured_again_over_both(tmp_path, monkeypatch):
    """ResNet-20's classifier (64 -> 10) and VGG-16's (512 -> 512, 512 -> 10) share one geometry key: measuring
    VGG-16 into ResNet-20's profile must widen that table, not price 512 channels off a 64-channel grid."""
    from edgeprune.latency import profiler
    from edgeprune.latency.profile import ProfileSettings, Table
    from edgeprune.targets import load_target

    measured = []

    def fake_table(target, key, cin_axis, cout_axis, tmp, timing="wall", settings=None):
        measured.append(key)
        ms = [1.0] * len(cin_axis) if cout_axis is None else [[1.0] * len(cout_axis) for _ in cin_axis]
        return Table(cin_axis, cout_axis, ms, ms)

    monkeypatch.setattr(profiler, "measure_table", fake_table)
    monkeypatch.setattr(profiler, "measure_variants", lambda target, models, shape, passes=1, desc="": [
        [(1.0, 2.0) for _ in models[1:]]])  # fmt: skip
    fast = ProfileSettings(grid_fractions=(0.5, 1.0), calibration_ratios=(0.0, 0.5), calibration_random=1)
    path, linear = tmp_path / "p.json", "linear|b1|1x1|k1|s1|gw0|fp32"
    first = profiler.profile_target(load_target("cpu-ort"), ["cifar_resnet20"], path, progress=False, settings=fast)
    assert first.tables[linear].cin == [32, 64] and first.tables[linear].cout == [5, 10]
    measured.clear()
    both = profiler.profile_target(load_target("cpu-ort"), ["cifar_vgg16"], path, progress=False, settings=fast)
    assert both.tables[linear].cin == [32, 64, 256, 512] and both.tables[linear].cout == [5, 10, 256, 512]
    assert linear in measured
    # of ResNet-20's tables, only those whose grid had to grow were measured again
    widened = {k for k in first.tables if (first.tables[k].cin, first.tables[k].cout) != (both.tables[k].cin,
                                                                                       both.tables[k].cout)}
    assert set(measured) & set(first.tables) == widened


def test_a_width_hit_twice_comes_down_and_a_slow_width_of_the_runtime_stays():
    """Two bursts on one width agree with each other, so the passes do not retime it; standing above both its
    neighbours, it is timed three more times. A width the runtime itself runs slowly stays slow."""
    line = [(64, c) for c in range(2, 65, 2)]
    hits = {(64, 20): 2}  # the first two timings of this width fall in bursts
    calls = []

    def measure(cin: int, cout: int) -> tuple[float, float]:
        calls.append((cin, cout))
        ms = 1.5 if cout >= 48 else 1.0
        if cout == 40:
            ms = 1.8  # the runtime's own slow path at this width
        if hits.get((cin, cout), 0) > 0:
            hits[(cin, cout)] -= 1
            ms *= 2
        return ms, 5.0

    sweep = run_sweep(line, measure, seed=1, lines=[line])
    assert set(sweep.spikes) == {(64, 20), (64, 40)} and sweep.retimed == []
    assert sweep.ms((64, 20)) == 1.0 and sweep.ms((64, 40)) == 1.8 and sweep.ms((64, 48)) == 1.5
    near = line_neighbours([line])
    assert len(calls) == 2 * len(line) + SPIKE_ROUNDS * sum(1 + len(near[p]) for p in sweep.spikes)
    plain = run_sweep(line, lambda ci, co: (2.0 if co == 20 else 1.0, 5.0), seed=1)  # no lines: no spike pass
    assert plain.spikes == [] and plain.ms((64, 20)) == 2.0


def test_profile_measure_says_how_many_widths_needed_a_third_timing(monkeypatch, tmp_path):
    import json
    from dataclasses import replace

    from click.testing import CliRunner

    from edgeprune.cli import main
    from edgeprune.latency import Profile, profiler
    from edgeprune.paths import shipped_dir

    data = json.loads((shipped_dir("profiles") / "cpu-ort-int8--amd-epyc-2c.json").read_text())
    for table in data["tables"].values():  # as a profile from before the counts were recorded stores its tables
        for key in ("retimed", "timed", "spikes"):
            table.pop(key, None)
    shipped = Profile.from_dict(data)
    assert shipped.disputed() == (0, 0, 0)  # tables from before the counts were recorded are left out
    busy = replace(shipped, tables={k: replace(t, timed=100, retimed=30, spikes=2) for k, t in shipped.tables.items()})
    monkeypatch.setattr(profiler, "profile_target", lambda *a, **k: busy)
    r = CliRunner().invoke(main, ["profile", "measure", "cpu-ort", "--model", "cifar_resnet20",
                                  "--out", str(tmp_path / "p.json")])  # fmt: skip
    n = len(busy.tables)
    assert r.exit_code == 0, r.output
    assert f"{30 * n:,} of {100 * n:,} widths (30 %) needed a third timing" in r.output
    assert f"{2 * n:,} stood above their neighbours" in r.output
    assert busy.disputed()[0] > shipped.disputed()[0]


def test_a_spike_timed_again_in_a_slow_spell_comes_down_beside_its_neighbours():
    """Its two passes hit by bursts, then every timing after the passes in a spell at twice the time: timed
    again alone, the width would stay at twice its cost; beside its neighbours, the spell cancels. The
    runtime's own slow width stays slow through the same spell."""
    line = [(64, c) for c in range(2, 65, 2)]
    calls = []

    def measure(cin: int, cout: int) -> tuple[float, float]:
        calls.append((cin, cout))
        ms = 1.8 if cout == 40 else 1.0
        passes = len(calls) <= 2 * len(line)
        return ms * (2 if (cout == 20 and passes) or not passes else 1), 5.0

    sweep = run_sweep(line, measure, seed=3, lines=[line])
    assert set(sweep.spikes) == {(64, 20), (64, 40)}
    assert sweep.ms((64, 20)) == pytest.approx(1.0) and sweep.ms((64, 40)) == pytest.approx(1.8)


def test_spikes_are_judged_against_the_median_of_three_or_four_neighbours_and_each_of_one_or_two():
    grid = {(i, j): 1.0 + 0.01 * (i + j) for i in range(4) for j in range(4)}
    grid[1, 1] = grid[2, 1] = 3.0  # two neighbours hit alike: each still above most of its neighbours
    grid[3, 3] = 1.5  # a corner above its two neighbours
    grid[0, 2], grid[1, 2] = 1.2, 1.15  # above one neighbour of three, not their median
    grid[0, 3] = 1.19  # a corner below one of its two neighbours ((0, 2)): a step that stays up on one side
    rows = [[(i, j) for j in range(4)] for i in range(4)]
    lines = [*rows, *(list(c) for c in zip(*rows))]
    found = find_spikes(grid.__getitem__, lines, 0.1)
    assert set(found) == {(1, 1), (2, 1), (3, 3)}
    assert sorted(found[3, 3]) == [(2, 3), (3, 2)] and len(found[1, 1]) == 4


def test_profile_fit_spikes_times_a_stored_spike_beside_its_neighbours_and_refits_the_lookups(
        tiny_profile, tmp_path, monkeypatch):  # fmt: skip
    """A stored table point three times its neighbours (a slow spell the old sweep kept) comes down to what the
    layer runs; the rest of the table stays, the lookup and calibration are chosen again on the stored runs,
    no network is timed, and the file read is left as it was."""
    from dataclasses import replace

    from click.testing import CliRunner

    from edgeprune.cli import main
    from edgeprune.latency import Profile, profiler, tables
    from edgeprune.latency.layers import Geometry
    from edgeprune.latency.spikes import refit_lookups

    _, _, profile = tiny_profile
    key = next(k for k, t in profile.tables.items() if t.cout is not None and len(t.cin) > 1 and len(t.cout) > 1)
    true = {}  # what each point of every table runs: the stored values
    for k, t in profile.tables.items():
        rows, scan, _ = tables._points(Geometry.from_key(k), t.cin, t.cout, t.scan_c or [])
        grid = [t.ms] if t.cout is None else t.ms
        true[k] = {p: v for row, values in zip(rows, grid) for p, v in zip(row, values)}
        true[k].update(zip(scan, t.scan_ms or []))
    inflated = [list(row) for row in profile.tables[key].ms]
    inflated[0][-1] *= 3  # a corner of the grid off the scan (which runs at the full input width)
    stale = replace(profile, tables={**profile.tables, key: replace(profile.tables[key], ms=inflated)})
    source, out = tmp_path / "old.json", tmp_path / "new.json"
    stale.save(source)
    monkeypatch.setattr(tables, "_time_layer", lambda target, g, ci, co, *a, **k: (true[g.key][ci, co], 1.0))
    monkeypatch.setattr(profiler, "measure_variants", lambda *a, **k: pytest.fail("a network was timed"))
    r = CliRunner().invoke(main, ["profile", "fit", "cpu-ort", "spikes", "--model", "cifar_resnet20", "--profile",
                                  str(source), "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    t = profile.tables[key]
    assert f"{key} {t.cin[0]}->{t.cout[-1]}: {3 * t.ms[0][-1]:.4f} -> {t.ms[0][-1]:.4f} ms" in r.output
    fixed = Profile.load(out)
    for k, table in profile.tables.items():  # every point back at what it runs (the spikes settled to it)
        for got, want in zip(*([t.ms] if t.cout is None else t.ms for t in (fixed.tables[k], table))):
            assert got == pytest.approx(want)
    again = refit_lookups(replace(fixed, calibration=stale.calibration, lookups=stale.lookups))
    assert fixed.calibration["cifar_resnet20"] == again.calibration["cifar_resnet20"]
    assert Profile.load(source).tables[key].ms[0][-1] == pytest.approx(3 * t.ms[0][-1])
    r = CliRunner().invoke(main, ["profile", "fit", "cpu-ort", "spikes", "--model", "mobilenet_v2", "--profile",
                                  str(source), "--out", str(tmp_path / "other.json")])  # fmt: skip
    assert r.exit_code != 0 and "layer geometries the profile never measured" in r.output
    assert "edgeprune profile measure cpu-ort --model mobilenet_v2" in r.output
    assert not (tmp_path / "other.json").exists()


def test_a_spike_beside_another_takes_its_estimate_from_the_undisturbed_neighbour():
    """A width a spell inflated (stored 3.0, runs 1.0) beside the runtime's slow width (stored and runs 1.8):
    judged against its neighbours' median, the slow width would carry the spell's excess over (2.0 x 1.8); each
    takes the least of its neighbours' estimates instead."""
    import random

    stored = {"hit": 3.0, "slow": 1.8, "left": 1.0, "right": 1.0}
    runs = {"hit": 1.0, "slow": 1.8, "left": 1.0, "right": 1.0}
    points = {name: (i, i) for i, name in enumerate(stored)}
    name_of = {v: k for k, v in points.items()}
    spiked = {points["hit"]: [points["left"], points["slow"]], points["slow"]: [points["hit"], points["right"]]}
    settled = settle_spikes(spiked, lambda p: stored[name_of[p]], lambda ci, co: (runs[name_of[ci, co]], 1.0),
                            random.Random(0))  # fmt: skip
    assert settled == {points["hit"]: pytest.approx(1.0), points["slow"]: pytest.approx(1.8)}


def test_neighbouring_widths_hit_alike_come_down_one_after_another():
    """Three scan widths a spell hit (1.5, 2.0, 1.5; all run 1.0): only the middle one stands above its
    neighbours at first. Settled, it lets the other two stand out, and a second search settles them; a width
    once settled is not timed again."""
    import random

    from edgeprune.latency.sweep import settle_all_spikes

    scan = [(64, c) for c in (4, 6, 8, 10, 12)]
    column = [(32, 8), (64, 8), (96, 8)]
    stored = dict.fromkeys(scan + column, 1.0)
    stored.update({(64, 6): 1.5, (64, 8): 2.0, (64, 10): 1.5})
    calls = []

    def measure(cin: int, cout: int) -> tuple[float, float]:
        calls.append((cin, cout))
        return 1.0, 1.0

    settled = settle_all_spikes(stored.__getitem__, [scan, column], 0.1, measure, random.Random(0))
    assert settled == {p: pytest.approx(1.0) for p in [(64, 6), (64, 8), (64, 10)]}
    assert calls.count((64, 8)) == SPIKE_ROUNDS * 3  # with its four neighbours, then beside each of the others
    once = settle_all_spikes(stored.__getitem__, [scan, column], 0.1, measure, random.Random(0), passes=1)
    assert once == {(64, 8): pytest.approx(1.0)}  # one search leaves the other two where the spell put them
