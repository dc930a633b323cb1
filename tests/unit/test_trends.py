"""Trend test p-values against an exact binomial tail computed here, term by term."""

from datetime import UTC, date, datetime, timedelta
from math import comb

from hypothesis import given
from hypothesis import strategies as st

from vigil.trends import weekly_trend

WEEK = date(2026, 3, 2)  # a Monday


def moments(baseline: list[int], current: int) -> list[datetime]:
    out = []
    for i, n in enumerate(reversed(baseline), start=1):
        out += [
            datetime.combine(WEEK - timedelta(weeks=i), datetime.min.time(), UTC) + timedelta(hours=j) for j in range(n)
        ]
    out += [datetime.combine(WEEK, datetime.min.time(), UTC) + timedelta(hours=j) for j in range(current)]
    return out


def exact_tail(k: int, n: int, p: float) -> float:
    return sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@given(st.lists(st.integers(0, 6), min_size=4, max_size=12).filter(lambda b: b[0] > 0), st.integers(0, 25))
def test_p_value_is_the_exact_binomial_tail(baseline: list[int], current: int) -> None:
    trend = weekly_trend(moments(baseline, current), WEEK)
    assert trend is not None
    n = current + sum(baseline)
    assert abs(trend.p_value - (exact_tail(current, n, 1 / (len(baseline) + 1)) if n else 1.0)) < 1e-9
    assert trend.expected == sum(baseline) / len(baseline)


def test_a_jump_is_significant_and_a_steady_week_is_not() -> None:
    steady = weekly_trend(moments([2, 3, 2, 1, 2, 3, 2, 2], 3), WEEK)
    jump = weekly_trend(moments([2, 3, 2, 1, 2, 3, 2, 2], 12), WEEK)
    assert steady is not None and not steady.significant
    assert jump is not None and jump.significant and jump.p_value < 1e-4


def test_no_verdict_without_four_weeks_of_baseline() -> None:
    assert weekly_trend(moments([5, 5, 5], 30), WEEK) is None
