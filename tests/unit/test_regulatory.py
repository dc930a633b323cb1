"""Reporting deadlines for every regime and category, across weekends, holidays and day boundaries.

Expected dates are worked out by hand from the 2026 calendar: 6 March is a Friday; Easter Sunday
is 5 April (Good Friday 3 April and Easter Monday 6 April are German public holidays); 14 July is
a French public holiday; Thanksgiving is Thursday 26 November.
"""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from vigil.regulatory import Regime, UnknownRule, applicable_regimes, classify, deadline, most_urgent

BERLIN, PARIS, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")


def at(day: str, hhmm: str = "10:00", tz: ZoneInfo = BERLIN) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=tz)


@pytest.mark.parametrize(
    ("regime", "category", "aware", "country", "last"),
    [
        # MDR 15 days from Fri 6 March ends Sat 21 March -> Monday 23 March (1182/71 Art. 3(4)).
        ("eu-mdr", "serious_incident", at("2026-03-06"), "DE", "2026-03-23"),
        ("eu-mdr", "death_or_serious_deterioration", at("2026-03-06"), "DE", "2026-03-16"),
        # 2 days ends Sun 8 -> Mon 9, but the period must hold two working days -> Tue 10.
        ("eu-mdr", "serious_public_health_threat", at("2026-03-06"), "DE", "2026-03-10"),
        # 2 days from Wed 1 April ends on Good Friday; Sat, Sun, Easter Monday -> Tue 7 April.
        ("eu-mdr", "serious_public_health_threat", at("2026-04-01"), "DE", "2026-04-07"),
        ("eu-mdr", "serious_incident", at("2026-04-01"), "DE", "2026-04-16"),
        # AI Act: 10 days from Sat 4 July lands on 14 July (Fête nationale) -> Wed 15 July.
        ("eu-ai-act", "death", at("2026-07-04", tz=PARIS), "FR", "2026-07-15"),
        ("eu-ai-act", "serious_incident", at("2026-03-06"), "DE", "2026-03-23"),
        ("eu-ai-act", "widespread_or_critical_infra", at("2026-03-06"), "DE", "2026-03-10"),
        # FDA 5 work days from Fri 20 Nov: 23, 24, 25, (26 Thanksgiving), 27, 30.
        ("fda-803", "remedial_action", at("2026-11-20", tz=NEW_YORK), "US", "2026-11-30"),
        # FDA 30 calendar days end on Sunday 20 December and do not move.
        ("fda-803", "death_or_serious_injury", at("2026-11-20", tz=NEW_YORK), "US", "2026-12-20"),
    ],
)
def test_deadlines(regime: str, category: str, aware: datetime, country: str, last: str) -> None:
    d = deadline(regime, category, aware, country)
    assert d.last_day == date.fromisoformat(last)
    zone = NEW_YORK if regime == "fda-803" else (PARIS if country == "FR" else BERLIN)
    assert d.due_at == datetime.combine(date.fromisoformat(last) + timedelta(days=1), time(0), zone)


def test_awareness_late_on_a_day_counts_from_that_day_in_local_time() -> None:
    late = deadline("eu-mdr", "death_or_serious_deterioration", at("2026-03-06", "23:59"), "DE")
    next_day = deadline("eu-mdr", "death_or_serious_deterioration", at("2026-03-07", "00:01"), "DE")
    assert (late.last_day, next_day.last_day) == (date(2026, 3, 16), date(2026, 3, 17))
    # 23:30 UTC on 6 March is already 7 March in Berlin.
    utc = deadline("eu-mdr", "death_or_serious_deterioration", at("2026-03-06", "23:30", ZoneInfo("UTC")), "DE")
    assert utc.last_day == date(2026, 3, 17)


def test_a_report_is_due_before_midnight_after_the_last_day() -> None:
    d = deadline("eu-mdr", "serious_incident", at("2026-03-06"), "DE")
    assert d.due_at == datetime(2026, 3, 24, 0, 0, tzinfo=BERLIN)


def test_unknown_rules_and_places_are_named() -> None:
    with pytest.raises(UnknownRule, match="known: serious_public_health_threat"):
        deadline("eu-mdr", "bad_day", at("2026-03-06"), "DE")
    with pytest.raises(ValueError, match="EU/EEA member states, not 'US'"):
        deadline("eu-mdr", "serious_incident", at("2026-03-06"), "US")
    with pytest.raises(ValueError, match="time zone"):
        deadline("eu-mdr", "serious_incident", datetime(2026, 3, 6), "DE")


@pytest.mark.parametrize(
    ("regime", "triage", "expected"),
    [
        ("eu-mdr", {"harm": "death"}, "death_or_serious_deterioration"),
        ("eu-mdr", {"harm": "serious_deterioration"}, "death_or_serious_deterioration"),
        ("eu-mdr", {"harm": "serious_deterioration", "expected": True}, "serious_incident"),
        ("eu-mdr", {"harm": "none", "public_health_threat": True}, "serious_public_health_threat"),
        ("eu-mdr", {"harm": "temporary"}, None),
        ("eu-ai-act", {"harm": "death"}, "death"),
        ("eu-ai-act", {"harm": "serious_deterioration"}, "serious_incident"),
        ("eu-ai-act", {"harm": "none", "widespread_or_critical_infra": True}, "widespread_or_critical_infra"),
        ("eu-ai-act", {"harm": "temporary"}, None),
        ("fda-803", {"harm": "death"}, "death_or_serious_injury"),
        ("fda-803", {"harm": "temporary", "remedial_action_needed": True}, "remedial_action"),
        ("fda-803", {"harm": "none"}, None),
    ],
)
def test_classification(regime: Regime, triage: dict, expected: str | None) -> None:
    args = {"public_health_threat": False, "expected": False, **triage}
    assert classify(regime, **args) == expected


def test_regimes_by_country_and_provisional_clocks() -> None:
    assert applicable_regimes("DE") == ["eu-mdr", "eu-ai-act"]
    assert applicable_regimes("US") == ["fda-803"]
    assert applicable_regimes("JP") == []
    assert most_urgent("eu-mdr") == "serious_public_health_threat"
    assert most_urgent("fda-803") == "remedial_action"
