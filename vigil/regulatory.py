"""Regulatory reporting clocks: which deadline applies, and when it falls.

| regime     | category                          | period             | source              |
|------------|-----------------------------------|--------------------|---------------------|
| eu-mdr     | serious_public_health_threat      | 2 days             | MDR Art. 87(4)      |
| eu-mdr     | death_or_serious_deterioration    | 10 days            | MDR Art. 87(5)      |
| eu-mdr     | serious_incident                  | 15 days            | MDR Art. 87(3)      |
| eu-ai-act  | widespread_or_critical_infra      | 2 days             | AI Act Art. 73(3)   |
| eu-ai-act  | death                             | 10 days            | AI Act Art. 73(4)   |
| eu-ai-act  | serious_incident                  | 15 days            | AI Act Art. 73(2)   |
| fda-803    | death_or_serious_injury           | 30 calendar days   | 21 CFR 803.50(a)    |
| fda-803    | remedial_action                   | 5 work days        | 21 CFR 803.53(a)    |

Periods start the day after awareness and end at the end of their last day, in the local time of
the country where the incident is reported. Calendar-day periods are counted by one of two rules:

- `elapsed_days` (the default): the last day is the awareness date plus the period's days, with
  no extension for weekends or holidays. This is how vigilance practice counts (the MEDDEV 2.12-1
  rev. 8 convention that MDR vigilance procedures and competent authorities carried over), and
  it never gives more time than an authority would.
- `regulation_1182_71`: Regulation (EEC, Euratom) No 1182/71 on periods, dates and time limits: a
  period whose last day is a Saturday, Sunday or public holiday of the member state ends at the end
  of the next working day (Art. 3(4)), and a period of two days or more includes at least two
  working days (Art. 3(5)). The latest legally arguable day; it applies to the EU regimes only.

Every deadline is computed under both: the rule in force (the policy's `reporting.counting`) drives
the clocks and their alerts, and the other rule's date is shown beside it. FDA work days are
Monday to Friday except federal holidays, observed dates included (21 CFR 803.3); FDA
calendar-day periods do not move under either rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

from vigil.events import Counting

Regime = Literal["eu-mdr", "eu-ai-act", "fda-803"]
REGIMES: tuple[Regime, ...] = ("eu-mdr", "eu-ai-act", "fda-803")
COUNTING_RULES: dict[Counting, str] = {
    "elapsed_days": "elapsed calendar days from awareness (vigilance practice, MEDDEV 2.12-1 rev. 8)",
    "regulation_1182_71": "Regulation 1182/71 (weekends and holidays extend; the latest legally arguable day)",
}


def other_rule(counting: Counting) -> Counting:
    return "regulation_1182_71" if counting == "elapsed_days" else "elapsed_days"


# fmt: off
EU_EEA = frozenset(("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
                    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "IS", "LI", "NO"))
# fmt: on
# The reporting country's time zone decides when a day ends. Where a country spans zones, the
# capital's is taken; override per deployment with `tz`.
TIME_ZONES = {
    "AT": "Europe/Vienna",
    "BE": "Europe/Brussels",
    "BG": "Europe/Sofia",
    "CY": "Asia/Nicosia",
    "CZ": "Europe/Prague",
    "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen",
    "EE": "Europe/Tallinn",
    "ES": "Europe/Madrid",
    "FI": "Europe/Helsinki",
    "FR": "Europe/Paris",
    "GR": "Europe/Athens",
    "HR": "Europe/Zagreb",
    "HU": "Europe/Budapest",
    "IE": "Europe/Dublin",
    "IT": "Europe/Rome",
    "LT": "Europe/Vilnius",
    "LU": "Europe/Luxembourg",
    "LV": "Europe/Riga",
    "MT": "Europe/Malta",
    "NL": "Europe/Amsterdam",
    "PL": "Europe/Warsaw",
    "PT": "Europe/Lisbon",
    "RO": "Europe/Bucharest",
    "SE": "Europe/Stockholm",
    "SI": "Europe/Ljubljana",
    "SK": "Europe/Bratislava",
    "IS": "Atlantic/Reykjavik",
    "LI": "Europe/Vaduz",
    "NO": "Europe/Oslo",
    "US": "America/New_York",
}  # fmt: skip


@dataclass(frozen=True)
class Rule:
    regime: Regime
    category: str
    days: int
    day_kind: Literal["calendar", "work"]
    citation: str
    trigger: str


RULES: dict[tuple[str, str], Rule] = {
    (r.regime, r.category): r
    for r in (
        Rule("eu-mdr", "serious_public_health_threat", 2, "calendar", "MDR Art. 87(4)", "serious public health threat"),
        Rule(
            "eu-mdr",
            "death_or_serious_deterioration",
            10,
            "calendar",
            "MDR Art. 87(5)",
            "death or unanticipated serious deterioration of health",
        ),
        Rule("eu-mdr", "serious_incident", 15, "calendar", "MDR Art. 87(3)", "other serious incident"),
        Rule(
            "eu-ai-act",
            "widespread_or_critical_infra",
            2,
            "calendar",
            "AI Act Art. 73(3)",
            "widespread infringement or serious disruption of critical infrastructure",
        ),
        Rule("eu-ai-act", "death", 10, "calendar", "AI Act Art. 73(4)", "death of a person"),
        Rule("eu-ai-act", "serious_incident", 15, "calendar", "AI Act Art. 73(2)", "other serious incident"),
        Rule("fda-803", "death_or_serious_injury", 30, "calendar", "21 CFR 803.50(a)", "death or serious injury"),
        Rule(
            "fda-803",
            "remedial_action",
            5,
            "work",
            "21 CFR 803.53(a)",
            "remedial action needed to prevent an unreasonable risk of substantial harm",
        ),
    )
}


class UnknownRule(ValueError):
    pass


def rule(regime: str, category: str) -> Rule:
    try:
        return RULES[(regime, category)]
    except KeyError:
        known = ", ".join(c for r, c in RULES if r == regime) or f"none (regimes: {', '.join(REGIMES)})"
        raise UnknownRule(f"no rule for regime {regime!r} and classification {category!r}; known: {known}") from None


@lru_cache(maxsize=256)  # building a calendar costs ~1 ms; deadlines ask for it once per day counted
def _public_holidays(country: str, year: int) -> holidays.HolidayBase:
    # US federal holidays for FDA; the member state's national holidays for the EU regimes.
    return holidays.country_holidays(country, years=[year - 1, year, year + 1])


def is_working_day(day: date, country: str) -> bool:
    return day.weekday() < 5 and day not in _public_holidays(country, day.year)


def _next_working_day(day: date, country: str) -> date:
    day += timedelta(days=1)
    while not is_working_day(day, country):
        day += timedelta(days=1)
    return day


def last_day(r: Rule, aware: date, country: str, counting: Counting = "elapsed_days") -> date:
    """The last day of the period that starts the day after `aware`, under a counting rule."""
    if r.day_kind == "work":
        day, counted = aware, 0
        while counted < r.days:
            day += timedelta(days=1)
            counted += is_working_day(day, country)
        return day
    day = aware + timedelta(days=r.days)
    if counting == "regulation_1182_71" and r.regime in ("eu-mdr", "eu-ai-act"):
        if not is_working_day(day, country):
            day = _next_working_day(day, country)
        if r.days >= 2:
            while sum(is_working_day(aware + timedelta(days=i), country) for i in range(1, (day - aware).days + 1)) < 2:
                day = _next_working_day(day, country)
    return day


@dataclass(frozen=True)
class Deadline:
    regime: Regime
    category: str
    citation: str
    trigger: str
    aware_at: datetime
    last_day: date
    due_at: datetime  # exclusive: a report is on time if submitted before this instant
    counting: Counting  # the rule last_day and due_at follow
    other_last_day: date  # under the other rule (the same day where the rules agree)
    other_due_at: datetime

    @property
    def period(self) -> str:
        r = RULES[(self.regime, self.category)]
        return f"{r.days} {'work days' if r.day_kind == 'work' else 'days'}"


def zone(country: str, tz: str | None = None) -> ZoneInfo:
    return ZoneInfo(tz or TIME_ZONES.get(country, "UTC"))


def deadline(
    regime: str,
    category: str,
    aware_at: datetime,
    country: str,
    tz: str | None = None,
    counting: Counting = "elapsed_days",
) -> Deadline:
    """When a report is due under the rule in force (`counting`), and under the other one."""
    if aware_at.tzinfo is None:
        raise ValueError("aware_at needs a time zone")
    r = rule(regime, category)
    if r.regime == "fda-803":
        country = "US"
    elif country not in EU_EEA:
        raise ValueError(f"{regime} applies in EU/EEA member states, not {country!r}")
    local_zone = zone(country, tz)
    aware_local = aware_at.astimezone(local_zone)
    last, other = (last_day(r, aware_local.date(), country, c) for c in (counting, other_rule(counting)))
    due, other_due = (datetime.combine(day + timedelta(days=1), time(0), local_zone) for day in (last, other))
    return Deadline(r.regime, r.category, r.citation, r.trigger, aware_at, last, due, counting, other, other_due)


def applicable_regimes(country: str) -> list[Regime]:
    """The regimes a medical-device AI model answers to where the incident occurred."""
    if country in EU_EEA:
        return ["eu-mdr", "eu-ai-act"]
    if country == "US":
        return ["fda-803"]
    return []


def most_urgent(regime: Regime) -> str:
    """The category with the shortest period: the provisional clock before triage."""
    return min((r for (g, _), r in RULES.items() if g == regime), key=lambda r: r.days).category


def classify(
    regime: Regime,
    *,
    harm: str,
    public_health_threat: bool,
    expected: bool,
    widespread_or_critical_infra: bool = False,
    remedial_action_needed: bool = False,
) -> str | None:
    """The reporting category a triaged incident falls in under a regime, or None if not reportable."""
    serious = harm in ("death", "serious_deterioration")
    if regime == "eu-mdr":
        if public_health_threat:
            return "serious_public_health_threat"
        if harm == "death" or (harm == "serious_deterioration" and not expected):
            return "death_or_serious_deterioration"
        return "serious_incident" if serious else None
    if regime == "eu-ai-act":
        if widespread_or_critical_infra:
            return "widespread_or_critical_infra"
        if harm == "death":
            return "death"
        return "serious_incident" if serious or public_health_threat else None
    if remedial_action_needed:
        return "remedial_action"
    return "death_or_serious_injury" if serious else None
