"""The timing harness, on a fake clock: runners whose calls cost a known amount of simulated time."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.timing import Ratio, summarize_ratios, summarize_rounds, time_interleaved


class Machine:
    """A fake clock and the runners on it: each call advances the clock by the runner's cost times the
    machine's speed factor (drifting with every call made), times seeded noise."""

    def __init__(self, drift: float = 0.0, noise: float = 0.0, seed: int = 0) -> None:
        self.now, self.calls, self.log = 0.0, 0, []
        self.drift, self.noise, self.rng = drift, noise, np.random.default_rng(seed)

    def clock(self) -> float:
        return self.now

    def runner(self, name: str, ms: float, burst: range = range(0), burst_factor: float = 1.0):
        def call() -> None:
            self.log.append(name)
            self.calls += 1
            factor = (1 + self.drift * self.calls) * (burst_factor if len(self.log) - 1 in burst else 1.0)
            if self.noise:
                factor *= float(np.exp(self.rng.normal(0.0, self.noise)))
            self.now += ms * factor / 1e3

        return call


def timed(machine: Machine, costs: dict[str, float], warmup=1, repeats=5, rounds=6, **kw):
    runners = {k: machine.runner(k, ms) for k, ms in costs.items()}
    return time_interleaved(runners, warmup, repeats, rounds, clock=machine.clock, **kw)


def test_warmup_then_interleaved_rounds_in_alternating_order():
    m = Machine()
    timed(m, {"a": 1.0, "b": 2.0}, warmup=2, repeats=3, rounds=4)
    rounds = ["aaabbb", "bbbaaa", "aaabbb", "bbbaaa"]
    assert "".join(m.log) == "aabb" + "".join(rounds)
    m = Machine()
    timed(m, {"a": 1.0, "b": 2.0, "c": 3.0}, warmup=0, repeats=1, rounds=3, alternate=False)
    assert "".join(m.log) == "abc" * 3


def test_warmup_calls_are_not_timed():
    m = Machine()
    costs = iter([100.0] * 3 + [2.0] * 12)  # three slow first calls: the warm-up

    def call():
        m.now += next(costs) / 1e3

    stats = time_interleaved({"a": call}, 3, 4, 3, clock=m.clock).stats["a"]
    assert stats.samples == 12 and stats.median_ms == pytest.approx(2.0) and stats.p90_ms == pytest.approx(2.0)


def test_stats_of_exact_costs():
    t = timed(Machine(), {"a": 2.0, "b": 3.0}, repeats=4, rounds=5, reference="a")
    a = t.stats["a"]
    assert a.samples == 20 and a.round_medians_ms == pytest.approx([2.0] * 5)
    assert (a.median_ms, a.min_ms, a.p90_ms, a.spread_pct) == pytest.approx((2.0, 2.0, 2.0, 0.0))
    assert t.ratios["b"] == Ratio(pytest.approx(1.5), pytest.approx(1.5), pytest.approx(1.5), 5)
    assert "a" not in t.ratios and t.speedup("b").median == pytest.approx(2 / 3)
    assert t.paired_ms() == pytest.approx({"a": 2.0, "b": 3.0})


def test_drift_cancels_in_the_paired_ratio_but_not_one_model_after_the_other():
    truth = 2.0
    t = timed(Machine(drift=0.03), {"slow": 8.0, "fast": 4.0}, reference="fast")
    assert t.ratios["slow"].contains(truth) and abs(t.ratios["slow"].median - truth) < 0.02
    m = Machine(drift=0.03)
    slow = timed(m, {"slow": 8.0}).stats["slow"].median_ms
    fast = timed(m, {"fast": 4.0}).stats["fast"].median_ms
    assert slow / fast < 1.5  # the drift, not the models, sets this ratio


def test_alternating_the_order_cancels_what_running_second_costs():
    """Within a round the second runner meets a slower machine; in the same order every round that bias is in
    every round's ratio, and the interval excludes the truth."""
    same = timed(Machine(drift=0.03), {"slow": 8.0, "fast": 4.0}, reference="fast", alternate=False)
    assert not same.ratios["slow"].contains(2.0) and same.ratios["slow"].high < 2.0
    alternating = timed(Machine(drift=0.03), {"slow": 8.0, "fast": 4.0}, reference="fast")
    assert alternating.ratios["slow"].contains(2.0)


def test_the_interval_holds_the_true_ratio_under_noise():
    truth, covered, widths = 1.5, 0, []
    for seed in range(200):
        r = timed(Machine(noise=0.08, seed=seed), {"ref": 2.0, "pruned": 3.0}, repeats=3, rounds=9,
                  reference="ref").ratios["pruned"]  # fmt: skip
        covered += r.contains(truth)
        widths.append(r.high - r.low)
        assert r.low <= r.median <= r.high
    assert covered >= 180  # about the 95 % asked for (a bootstrap of 9 rounds runs a little under it)
    assert 0.02 < np.median(widths) < 0.3  # an interval, not a point, and not everything (1.2 to 1.8)


def test_one_slow_round_moves_neither_the_median_nor_the_spread():
    m = Machine()
    burst = m.runner("a", 2.0, burst=range(7, 10), burst_factor=5.0)  # all of round 3 (after 1 warm-up call)
    stats = time_interleaved({"a": burst}, 1, 3, 8, clock=m.clock).stats["a"]
    assert max(stats.round_medians_ms) == pytest.approx(10.0) and stats.round_medians_ms[2] == pytest.approx(10.0)
    assert stats.median_ms == pytest.approx(2.0) and stats.spread_pct == pytest.approx(0.0)


def test_the_interval_is_repeatable_for_a_seed():
    values = [1.02, 0.97, 1.05, 0.99, 1.01, 1.08, 0.95]
    assert summarize_ratios(values, seed=3) == summarize_ratios(values, seed=3)
    r = summarize_ratios(values)
    assert r.median == pytest.approx(1.01) and r.rounds == 7 and 0.95 <= r.low < 1.01 < r.high <= 1.08
    assert summarize_ratios([1.3]) == Ratio(1.3, 1.3, 1.3, 1)
    with pytest.raises(ValueError):
        summarize_ratios([])


def test_speedup_is_the_inverse_ratio_with_its_bounds_swapped():
    s = Ratio(0.5, 0.4, 0.8, 5).inverse()
    assert (s.median, s.low, s.high) == pytest.approx((2.0, 1.25, 2.5)) and s.rounds == 5


def test_spread_is_the_interquartile_range_from_four_rounds_and_the_range_below():
    assert summarize_rounds([[1.0], [2.0], [3.0]]).spread_pct == pytest.approx(100.0)
    four = summarize_rounds([[1.0], [2.0], [2.0], [10.0]])
    assert four.median_ms == 2.0 and four.spread_pct < 400.0


def test_bad_arguments():
    with pytest.raises(KeyError, match="reference"):
        timed(Machine(), {"a": 1.0}, reference="b")
    with pytest.raises(ValueError):
        timed(Machine(), {"a": 1.0}, rounds=0)
