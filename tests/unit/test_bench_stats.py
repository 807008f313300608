"""The benchmark's statistics (tests/bench/api.py): percentiles, summaries, arrival schedules, shares."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.bench.api import arrival_times, percentile, share, summarize


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0], 50, 1.0),
        ([1.0], 99, 1.0),
        ([1.0, 2.0], 50, 1.0),
        ([1.0, 2.0], 51, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 75, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([float(v) for v in range(1, 101)], 99, 99.0),
        ([float(v) for v in range(1, 101)], 90, 90.0),
        ([float(v) for v in range(1, 1001)], 99, 990.0),
    ],
    ids=[
        "one-p50",
        "one-p99",
        "two-p50",
        "two-p51",
        "four-p50",
        "four-p75",
        "four-p100",
        "100-p99",
        "100-p90",
        "1000-p99",
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 50))


@pytest.mark.parametrize("q", [0, -1, 100.5])
def test_percentile_refuses_q_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], q)


@given(st.lists(st.floats(min_value=0, max_value=1e3, allow_nan=False), min_size=1), st.floats(0.01, 100))
def test_percentile_is_a_measured_value_between_min_and_max(values: list[float], q: float) -> None:
    ordered = sorted(values)
    p = percentile(ordered, q)
    assert p in ordered
    assert ordered[0] <= p <= ordered[-1]
    # at least q% of the values are <= p
    assert sum(v <= p for v in ordered) >= q / 100 * len(ordered)


@given(st.lists(st.floats(min_value=0, max_value=1e3, allow_nan=False), min_size=1))
def test_percentiles_are_ordered(values: list[float]) -> None:
    s = summarize(values, errors=0, seconds=1.0)
    assert s.p50 <= s.p90 <= s.p99 <= s.max == max(values)


def test_summary_rate_counts_successes_only() -> None:
    s = summarize([0.01] * 100, errors=10, seconds=2.0)
    assert s.requests == 100
    assert s.rate == 45.0


def test_summary_of_an_empty_phase() -> None:
    s = summarize([], errors=0, seconds=0.0)
    assert s.requests == 0
    assert math.isnan(s.rate)
    assert math.isnan(s.p99)


def test_arrival_times_are_evenly_spaced_at_the_rate() -> None:
    assert arrival_times(4, 5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert arrival_times(200, 6000)[-1] == pytest.approx(29.995)
    with pytest.raises(ValueError, match="rate"):
        arrival_times(0, 1)


@given(st.integers(0, 10_000), st.integers(1, 64))
def test_shares_add_up_and_differ_by_at_most_one(total: int, parts: int) -> None:
    shares = [share(total, parts, i) for i in range(parts)]
    assert sum(shares) == total
    assert max(shares) - min(shares) <= 1
