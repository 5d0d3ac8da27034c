"""Shuffled, re-timed width sweeps: an interference burst is outvoted, a real step survives."""

from __future__ import annotations

from edgeprune.latency.sweep import off_neighbours, run_sweep


def test_off_neighbours_flags_a_spike_and_both_edges_of_a_step_but_nothing_flat():
    assert off_neighbours([1.0] * 8, 0.1) == []
    assert off_neighbours([1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0], 0.1) == [3]
    assert off_neighbours([1.0, 1.0, 1.0, 1.5, 1.5, 1.5], 0.1) == [2, 3]
    assert off_neighbours([1.0, 1.05, 0.96, 1.0], 0.1) == []


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
    sweep = run_sweep(line, [line], measure, seed=3)
    assert [sweep.ms(p) for p in line] == [1.5 if c >= 48 else 1.0 for c in widths]
    hit = [p for p in line if sweep.first_ms(p) != sweep.ms(p)]
    assert len(hit) == 8 and set(hit) <= set(sweep.remeasured)
    # shuffled: the burst's eight widths are scattered, not the contiguous run an in-order sweep would show
    assert max(c for _, c in hit) - min(c for _, c in hit) > 2 * 8
    assert len(calls) == len(line) + len(sweep.remeasured)


def test_without_interference_only_the_step_edges_are_timed_again():
    line = [(64, c) for c in range(2, 65, 2)]
    measure, calls = make_machine(range(0))
    sweep = run_sweep(line, [line], measure, seed=0)
    assert sorted(set(sweep.remeasured)) == [(64, 46), (64, 48)]
    assert len(calls) == len(line) + 4  # two more timings of each edge, then nothing stands off
    assert sweep.spread((64, 48)) == 5.0


def test_the_profiler_measures_tables_by_the_sweep(monkeypatch, tmp_path):
    from edgeprune.latency import profiler
    from edgeprune.targets import load_target

    calls = []

    def fake_time_layer(target, g, cin, cout, tmp, timing, settings):
        calls.append((cin, cout))
        ms = 0.01 * cin * cout / 64 + (0.5 if cout >= 60 else 0.0)  # a real step at 60 channels
        return (3 * ms if 10 <= len(calls) < 20 else ms, 1.0)  # a burst: ten calls in a row

    monkeypatch.setattr(profiler, "_time_layer", fake_time_layer)
    key = "conv|b1|8x8|k3|s1|gw0|fp32"
    table = profiler.measure_table(load_target("cpu-ort"), key, [32, 64], [32, 48, 64], tmp_path)
    assert table.ms == [[0.01 * ci * co / 64 + (0.5 if co >= 60 else 0.0) for co in (32, 48, 64)] for ci in (32, 64)]
    assert table.scan_ms == [0.01 * 64 * c / 64 + (0.5 if c >= 60 else 0.0) for c in table.scan_c]
    points = {(ci, co) for ci in (32, 64) for co in (32, 48, 64)} | {(64, c) for c in table.scan_c}
    assert table.retimed >= 10 and len(calls) == len(points) + 2 * table.retimed  # each point once, then twice
