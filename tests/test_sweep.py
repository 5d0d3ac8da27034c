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
