"""The quarterly export's pure parts: quarter bounds and signal lines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vigil.export import Period, QuarterError, current_quarter, quarter, quarter_bounds, signal_row, span


@pytest.mark.parametrize(
    ("quarter", "start", "end"),
    [
        ("2026Q1", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
        ("2026-q3", datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)),
        ("2026Q4", datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_quarter_bounds(quarter: str, start: datetime, end: datetime) -> None:
    assert quarter_bounds(quarter) == (start, end)


def test_bad_quarters_are_named() -> None:
    with pytest.raises(QuarterError, match="2026Q5"):
        quarter_bounds("2026Q5")
    assert current_quarter(datetime(2026, 11, 25, tzinfo=UTC)) == "2026Q4"


def test_signal_lines_carry_the_figures() -> None:
    estimate = {"subgroup": {"site": "rural"}, "value": 0.76, "ci_low": 0.61, "ci_high": 0.86}
    breach = {"event_type": "ThresholdRestored", "event_id": "e", "occurred_at": "t", "model_id": "m",
              "model_version": "1", "level": "restored", "metric": "sensitivity", "estimate": estimate,
              "threshold": 0.9}  # fmt: skip
    assert signal_row(breach)["detail"] == "restored: sensitivity 0.760 [0.610, 0.860] < 0.9 site=rural"
    drift = {"event_type": "DriftDetected", "event_id": "e", "occurred_at": "t", "model_id": "m", "model_version": "1",
             "feature": "x", "method": "ks", "score": 1e-6, "threshold": 0.05, "window": "count:1"}  # fmt: skip
    assert signal_row(drift)["detail"] == "x: ks 1e-06 vs 0.05 (count:1)"


def test_a_span_is_named_by_its_bounds_and_refuses_backwards_ones() -> None:
    start, end = datetime(2026, 11, 17, 8, tzinfo=UTC), datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    period = span(start, end)
    assert (period.name, period.days, period.quarterly) == ("20261117T0800-20261201T0930", 14, False)
    assert quarter("2026-q4") == Period("2026Q4", *quarter_bounds("2026Q4"), quarterly=True)
    with pytest.raises(QuarterError, match="ends after it starts"):
        span(end, start)
