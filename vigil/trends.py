"""Trend reporting (MDR Art. 88): is this week's count of non-serious incidents significantly high?

Method: the conditional test for a Poisson rate ratio. With `w` baseline weeks holding `b`
incidents and `k` incidents this week, under "no increase" the weekly rate is constant, so given
n = k + b the current week's count is Binomial(n, 1 / (w + 1)). The one-sided p-value is
P(X >= k). Unlike comparing with the baseline mean, it accounts for the baseline's own
uncertainty and needs no special case for an empty baseline.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from scipy.stats import binomtest

from vigil.alerts import alert_for
from vigil.events import Event, TrendDetected

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


NAMESPACE = uuid.UUID("5e9a1c3b-7d2f-4b6e-8a0c-1f4d6b8e2a97")
NON_SERIOUS = ("none", "temporary")


def trend_events(model_id: str, moments: Iterable[datetime], now: datetime) -> list[Event]:
    """TrendDetected and its alert when this week's non-serious incidents are significantly high.

    Ids are per model and week, so the trend is raised once a week however often it is checked.
    """
    trend = weekly_trend(moments, week_start(now))
    if trend is None or not trend.significant:
        return []
    detected = TrendDetected(
        event_id=uuid.uuid5(NAMESPACE, f"trend/{model_id}/{trend.week_start}"),
        occurred_at=now,
        model_id=model_id,
        week_start=trend.week_start,
        count=trend.count,
        expected=trend.expected,
        baseline_weeks=trend.baseline_weeks,
        p_value=trend.p_value,
        method=METHOD,
    )
    alert = alert_for(
        detected,
        "IncidentTrendDetected",
        "warning",
        f"{trend.count} non-serious incidents in the week of {trend.week_start} against {trend.expected:.1f} "
        f"a week before (p={trend.p_value:.2g}): an MDR Art. 88 trend report may be due",
        model_id=model_id,
        labels={"kind": "trend"},
    )
    return [detected, alert]
