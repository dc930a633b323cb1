"""Reporting deadlines for every regime and category, across weekends, holidays and day boundaries.

Expected dates are worked out by hand from the 2026 calendar: 6 March is a Friday; Easter Sunday
is 5 April (Good Friday 3 April and Easter Monday 6 April are German public holidays); 14 July is
a French public holiday; Thanksgiving is Thursday 26 November.
"""

import json
import os
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from vigil.events import Counting
from vigil.regulatory import Regime, UnknownRule, applicable_regimes, classify, deadline, most_urgent

BERLIN, PARIS, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")


def at(day: str, hhmm: str = "10:00", tz: ZoneInfo = BERLIN) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=tz)


@pytest.mark.parametrize(
    ("regime", "category", "aware", "country", "elapsed", "regulation"),
    [
        # Last days under the two counting rules: elapsed calendar days (the default) and
        # Regulation 1182/71 (weekends and holidays extend a period; a period of two days or more
        # holds two working days).
        # MDR 15 days from Fri 6 March: Sat 21 March; 1182/71 moves it to Monday 23 March.
        ("eu-mdr", "serious_incident", at("2026-03-06"), "DE", "2026-03-21", "2026-03-23"),
        ("eu-mdr", "death_or_serious_deterioration", at("2026-03-06"), "DE", "2026-03-16", "2026-03-16"),
        # 2 days: Sun 8; 1182/71: Mon 9, but the period must hold two working days -> Tue 10.
        ("eu-mdr", "serious_public_health_threat", at("2026-03-06"), "DE", "2026-03-08", "2026-03-10"),
        # The case: a public health threat known on Friday 15 May is due by Sunday 17 May,
        # not Tuesday 19 May.
        ("eu-mdr", "serious_public_health_threat", at("2026-05-15"), "DE", "2026-05-17", "2026-05-19"),
        # Easter: 2 days from Wed 1 April end on Good Friday; 1182/71: Sat, Sun, Easter Monday -> Tue 7.
        ("eu-mdr", "serious_public_health_threat", at("2026-04-01"), "DE", "2026-04-03", "2026-04-07"),
        ("eu-mdr", "serious_incident", at("2026-04-01"), "DE", "2026-04-16", "2026-04-16"),
        # Christmas to New Year, across the year boundary: 15 days from Thu 17 December end on New
        # Year's Day (a Friday); 1182/71 -> Mon 4 January 2027.
        ("eu-mdr", "serious_incident", at("2026-12-17"), "DE", "2027-01-01", "2027-01-04"),
        ("eu-mdr", "death_or_serious_deterioration", at("2026-12-22"), "DE", "2027-01-01", "2027-01-04"),
        # 2 days from Wed 23 December: Christmas Day; 1182/71: 25, 26 (holidays), 27 (Sunday) -> Mon 28,
        # with Thu 24 and Mon 28 its two working days.
        ("eu-mdr", "serious_public_health_threat", at("2026-12-23"), "DE", "2026-12-25", "2026-12-28"),
        # AI Act: 10 days from Sat 4 July land on 14 July (Fête nationale); 1182/71 -> Wed 15 July.
        ("eu-ai-act", "death", at("2026-07-04", tz=PARIS), "FR", "2026-07-14", "2026-07-15"),
        ("eu-ai-act", "serious_incident", at("2026-03-06"), "DE", "2026-03-21", "2026-03-23"),
        ("eu-ai-act", "widespread_or_critical_infra", at("2026-03-06"), "DE", "2026-03-08", "2026-03-10"),
        # FDA's 5 work days are work days under both rules. From Fri 20 Nov: 23, 24, 25, (26
        # Thanksgiving), 27, 30.
        ("fda-803", "remedial_action", at("2026-11-20", tz=NEW_YORK), "US", "2026-11-30", "2026-11-30"),
        # From Wed 23 December: 24, (25 Christmas), 28, 29, 30, 31.
        ("fda-803", "remedial_action", at("2026-12-23", tz=NEW_YORK), "US", "2026-12-31", "2026-12-31"),
        # Observed dates: 4 July 2027 is a Sunday, observed Monday 5 July. From Thu 1 July: 2, 6, 7, 8, 9.
        ("fda-803", "remedial_action", at("2027-07-01", tz=NEW_YORK), "US", "2027-07-09", "2027-07-09"),
        # FDA's 30 calendar days end on Sunday 20 December and do not move under either rule.
        ("fda-803", "death_or_serious_injury", at("2026-11-20", tz=NEW_YORK), "US", "2026-12-20", "2026-12-20"),
    ],
)
@pytest.mark.parametrize("counting", ["elapsed_days", "regulation_1182_71"])
def test_deadlines(
    regime: str, category: str, aware: datetime, country: str, elapsed: str, regulation: str, counting: Counting
) -> None:
    d = deadline(regime, category, aware, country, counting=counting)
    last, other = (elapsed, regulation) if counting == "elapsed_days" else (regulation, elapsed)
    assert (d.counting, d.last_day, d.other_last_day) == (counting, date.fromisoformat(last), date.fromisoformat(other))
    zone = NEW_YORK if regime == "fda-803" else (PARIS if country == "FR" else BERLIN)
    assert d.due_at == datetime.combine(date.fromisoformat(last) + timedelta(days=1), time(0), zone)
    assert d.other_due_at == datetime.combine(date.fromisoformat(other) + timedelta(days=1), time(0), zone)


def test_elapsed_days_are_the_default() -> None:
    assert deadline("eu-mdr", "serious_public_health_threat", at("2026-05-15"), "DE").last_day == date(2026, 5, 17)


@pytest.mark.parametrize("counting", ["elapsed_days", "regulation_1182_71"])
def test_awareness_late_on_a_day_counts_from_that_day_in_local_time(counting: Counting) -> None:
    def last(aware: datetime) -> date:
        return deadline("eu-mdr", "death_or_serious_deterioration", aware, "DE", counting=counting).last_day

    # 10 days from Fri 6 March is Mon 16 March; from Sat 7 March, Tue 17 March: both rules agree.
    assert (last(at("2026-03-06", "23:59")), last(at("2026-03-07", "00:01"))) == (date(2026, 3, 16), date(2026, 3, 17))
    # 23:30 UTC on 6 March is already 7 March in Berlin.
    assert last(at("2026-03-06", "23:30", ZoneInfo("UTC"))) == date(2026, 3, 17)
    # Where the rules differ: 22:30 UTC on Fri 6 March is 23:30 in Berlin, still the 6th; 23:30 UTC
    # is already Saturday the 7th there.
    serious = {
        aware: deadline("eu-mdr", "serious_incident", aware, "DE", counting=counting).last_day
        for aware in (at("2026-03-06", "22:30", ZoneInfo("UTC")), at("2026-03-06", "23:30", ZoneInfo("UTC")))
    }
    # From Fri 6 March (local): Sat 21 (elapsed) or Mon 23 (1182/71); from Sat 7: Sun 22 or Mon 23.
    expected = [date(2026, 3, 21), date(2026, 3, 22)] if counting == "elapsed_days" else [date(2026, 3, 23)] * 2
    assert list(serious.values()) == expected


def test_a_report_is_due_before_midnight_after_the_last_day() -> None:
    d = deadline("eu-mdr", "serious_incident", at("2026-03-06"), "DE")  # last day Saturday 21 March
    assert d.due_at == datetime(2026, 3, 22, 0, 0, tzinfo=BERLIN)


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


@pytest.mark.parametrize("counting", ["elapsed_days", "regulation_1182_71"])
def test_the_deadlines_command_gives_the_rule_in_force_and_the_other_beside_it(
    counting: Counting, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(f"defaults:\n  reporting:\n    counting: {counting}\n")
    env = {**os.environ, "VIGIL_POLICY_FILE": str(policy)}
    args = ["--regime", "eu-mdr", "--classification", "serious_public_health_threat", "--aware", "2026-05-15"]
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "incident", "deadlines", *args, "--country", "DE", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = json.loads(done.stdout)
    days = {"elapsed_days": "2026-05-17", "regulation_1182_71": "2026-05-19"}
    other = next(c for c in days if c != counting)
    assert (found["counting"], found["last_day"]) == (counting, days[counting])
    assert (found["other_counting"], found["other_last_day"]) == (other, days[other])
