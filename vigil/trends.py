"""Trend reporting (MDR Art. 88): is this week's count of non-serious incidents significantly high?

Method: the conditional test for a Poisson rate ratio. With `w` baseline weeks holding `b`
incidents and `k` incidents this week, under "no increase" the weekly rate is constant, so given
n = k + b the current week's count is Binomial(n, 1 / (w + 1)). The one-sided p-value is
P(X >= k). Unlike comparing with the baseline mean, it accounts for the baseline's own
uncertainty and needs no special case for an empty baseline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from scipy.stats import binomtest

METHOD = "conditional Poisson rate-ratio test (exact binomial, one-sided)"


def week_start(moment: datetime | date) -> date:
    day = moment.date() if isinstance(moment, datetime) else moment
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class Trend:
    week_start: date
    count: int
    expected: float
    baseline_weeks: int
    p_value: float
    significant: bool


def weekly_trend(
    moments: Iterable[datetime],
    week: date,
    baseline_weeks: int = 12,
    alpha: float = 0.01,
    min_baseline_weeks: int = 4,
) -> Trend | None:
    """Test `week` against the `baseline_weeks` before it; None until the baseline is long enough."""
    counts = Counter(week_start(m) for m in moments)
    first = min(counts, default=week)
    available = min(baseline_weeks, (week - first).days // 7)
    if available < min_baseline_weeks:
        return None
    baseline = [counts.get(week - timedelta(weeks=i), 0) for i in range(1, available + 1)]
    k, b = counts.get(week, 0), sum(baseline)
    n = k + b
    p = binomtest(k, n, 1 / (available + 1), alternative="greater").pvalue if n else 1.0
    return Trend(week, k, b / available, available, float(p), k > b / available and p < alpha)
