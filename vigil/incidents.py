"""The incident aggregate as a decider: `decide(state, command, now) -> events`, `evolve(state, event) -> state`.

Lifecycle: reported (or candidate) → triaged → assessed (reportable or not) → reporting (initial
report submitted) → final_submitted → closed. Regulatory clocks run from awareness: before
reportability is decided they are provisional and assume the shortest period that may apply, so
an incident nobody triages still goes overdue.

The API, the worker and `vigil replay` all use these two functions; current state is a fold of
`evolve` over the incident's events, and state "as of" a moment is the same fold over fewer events.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, get_args
from uuid import UUID

from pydantic import AwareDatetime, Field

from vigil.alerts import alert_for
from vigil.events import (
    AlertRaised,
    Causality,
    Clock,
    Counting,
    Event,
    Harm,
    IncidentCandidateRaised,
    IncidentClosed,
    IncidentReported,
    IncidentTriaged,
    Record,
    RegimeName,
    ReportabilityDecided,
    ReportDueSoon,
    ReportOverdue,
    ReportSubmitted,
    ReportType,
)
from vigil.regulatory import Deadline, applicable_regimes, classify, deadline, most_urgent

Status = Literal["candidate", "reported", "triaged", "assessed", "reporting", "final_submitted", "closed"]
NAMESPACE = uuid.UUID("1b7e3f2a-9c4d-4e8b-a6f0-5d2c7b9e1a30")
DUE_SOON = timedelta(days=1)


class DomainError(Exception):
    """A command the aggregate refuses; the message says why and what is allowed."""


class InvalidTransition(DomainError):
    pass


class InvalidInput(DomainError):
    """The command's data is impossible (e.g. awareness in the future)."""


class HistoryEntry(Record):
    event_type: str
    event_id: UUID
    occurred_at: AwareDatetime
    by: str | None = None
    role: str | None = None
    summary: str


class Incident(Record):
    incident_id: UUID
    status: Status
    source: Literal["report", "candidate"]
    model_id: str
    model_version: str
    country: str
    aware_at: AwareDatetime
    counting: Counting = "elapsed_days"  # how its clocks count calendar days (vigil/regulatory.py)
    incident_date: date | None = None  # when it happened, if the report said
    description: str
    inference_ids: list[UUID] = Field(default_factory=list)
    reported_harm: Harm | None = None
    reporter_role: str | None = None
    triage: IncidentTriaged | None = None
    reportable: bool | None = None
    decision_rationale: str | None = None
    clocks: list[Clock] = Field(default_factory=list)
    reports: list[ReportSubmitted] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list, description="clock alerts already raised (clock_flag)")
    closed_rationale: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    version: int = 0

    def clock_satisfied(self, clock: Clock) -> bool:
        opening = ("initial", "combined_initial_final")
        return any(r.regime == clock.regime and r.report_type in opening for r in self.reports)

    def open_clocks(self) -> list[Clock]:
        if self.status == "closed":
            return []
        return [c for c in self.clocks if not self.clock_satisfied(c)]

    def overdue(self) -> bool:
        return any(clock_flag(c.regime, "overdue", c.due_at) in self.flags for c in self.open_clocks())

    def next_due_at(self) -> datetime | None:
        return min((c.due_at for c in self.open_clocks()), default=None)


class IncidentSummary(Record):
    """An incident as the inbox lists it: what to sort and filter by, without its history."""

    incident_id: UUID
    model_id: str
    model_version: str
    status: Status
    source: Literal["report", "candidate"]
    country: str
    aware_at: AwareDatetime
    harm: Harm | None = Field(description="as triaged, else as reported")
    reportable: bool | None
    next_due_at: AwareDatetime | None = Field(description="the nearest deadline of an open reporting clock")
    overdue: bool
    version: int


def summary_of(state: Incident) -> IncidentSummary:
    return IncidentSummary(
        incident_id=state.incident_id,
        model_id=state.model_id,
        model_version=state.model_version,
        status=state.status,
        source=state.source,
        country=state.country,
        aware_at=state.aware_at,
        harm=state.triage.harm if state.triage else state.reported_harm,
        reportable=state.reportable,
        next_due_at=state.next_due_at(),
        overdue=state.overdue(),
        version=state.version,
    )


# --- commands --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Triage:
    by: str
    role: str
    harm: Harm
    causality: Causality
    expected: bool
    rationale: str
    public_health_threat: bool = False
    widespread_or_critical_infra: bool = False
    remedial_action_needed: bool = False
    device_problem_codes: tuple[str, ...] = ()  # IMDRF Annex A, checked by IncidentTriaged
    health_effect_codes: tuple[str, ...] = ()  # IMDRF Annexes E and F


@dataclass(frozen=True)
class DecideReportability:
    by: str
    role: str
    reportable: bool
    rationale: str


@dataclass(frozen=True)
class SubmitReport:
    by: str
    role: str
    regime: str
    report_type: ReportType
    reference: str


@dataclass(frozen=True)
class Close:
    by: str
    role: str
    rationale: str


Command = Triage | DecideReportability | SubmitReport | Close

ALLOWED: dict[Status, tuple[str, ...]] = {
    "candidate": ("Triage",),
    "reported": ("Triage",),
    "triaged": ("Triage", "DecideReportability"),
    "assessed": ("SubmitReport", "Close"),
    "reporting": ("SubmitReport",),
    "final_submitted": ("Close",),
    "closed": (),
}


def _event_id(state: Incident, kind: str) -> UUID:
    # Deterministic: the same command on the same state yields the same event, so a retried
    # request is recorded once.
    return uuid.uuid5(NAMESPACE, f"{state.incident_id}/{state.version}/{kind}")


def _clock(d: Deadline, provisional: bool) -> Clock:
    return Clock(
        regime=d.regime,
        category=d.category,
        citation=d.citation,
        trigger=d.trigger,
        last_day=d.last_day,
        due_at=d.due_at,
        provisional=provisional,
        counting=d.counting,
        other_last_day=d.other_last_day,
    )


def classified_clocks(state: Incident, triage: IncidentTriaged | Triage, provisional: bool) -> list[Clock]:
    clocks = []
    for regime in applicable_regimes(state.country):
        category = classify(
            regime,
            harm=triage.harm,
            public_health_threat=triage.public_health_threat,
            expected=triage.expected,
            widespread_or_critical_infra=triage.widespread_or_critical_infra,
            remedial_action_needed=triage.remedial_action_needed,
        )
        if category:
            d = deadline(regime, category, state.aware_at, state.country, counting=state.counting)
            clocks.append(_clock(d, provisional))
    return clocks


def check_awareness(aware_at: datetime, now: datetime) -> None:
    if aware_at > now:
        raise InvalidInput(f"aware_at {aware_at.isoformat()} is in the future (now {now.isoformat()})")


def decide(state: Incident | None, command: Command, now: datetime) -> list[Event]:
    if state is None:
        raise DomainError("unknown incident: report it first")
    name = type(command).__name__
    if name not in ALLOWED[state.status]:
        allowed = ", ".join(ALLOWED[state.status]) or "nothing (the incident is closed)"
        raise InvalidTransition(f"cannot {name} an incident that is {state.status}; allowed: {allowed}")
    common = {"incident_id": state.incident_id, "occurred_at": now, "event_id": _event_id(state, name)}
    actor = {"by": command.by, "role": command.role}
    match command:
        case Triage():
            fields = {k: getattr(command, k) for k in Triage.__dataclass_fields__ if k not in ("by", "role")}
            return [IncidentTriaged(**common, **actor, **fields)]
        case DecideReportability(reportable=reportable, rationale=rationale):
            triage = state.triage
            assert triage is not None, "ALLOWED lets only an assessed (triaged) incident be decided"
            clocks = classified_clocks(state, triage, provisional=False) if reportable else []
            if reportable and not clocks:
                raise DomainError(
                    "the triage gives no reportable category under "
                    f"{', '.join(applicable_regimes(state.country)) or 'any regime for ' + state.country}; "
                    "triage again or decide not reportable"
                )
            return [ReportabilityDecided(**common, **actor, reportable=reportable, clocks=clocks, rationale=rationale)]
        case SubmitReport(regime=regime, report_type=report_type, reference=reference):
            _check_report(state, regime, report_type)
            return [ReportSubmitted(**common, **actor, regime=regime, report_type=report_type, reference=reference)]
        case Close(rationale=rationale):
            if state.status == "assessed" and state.reportable:
                raise InvalidTransition("a reportable incident closes after its final report; allowed: SubmitReport")
            return [IncidentClosed(**common, **actor, rationale=rationale)]
    raise DomainError(f"unknown command {name}")  # pragma: no cover


def _check_report(state: Incident, regime: str, report_type: str) -> None:
    regimes = sorted({c.regime for c in state.clocks})
    if state.reportable is not True or regime not in regimes:
        under = ", ".join(regimes) or "nothing"
        raise DomainError(f"no reporting obligation under {regime!r}; this incident reports under: {under}")
    sent = [r.report_type for r in state.reports if r.regime == regime]
    opened = any(t in ("initial", "combined_initial_final") for t in sent)
    finished = any(t in ("final", "combined_initial_final") for t in sent)
    if finished:
        raise InvalidTransition(f"the {regime} report is final already; no further reports for {regime}")
    if report_type in ("initial", "combined_initial_final") and opened:
        raise InvalidTransition(f"an initial {regime} report was submitted; allowed: follow_up, final")
    if report_type in ("follow_up", "final") and not opened:
        raise InvalidTransition(f"submit the initial {regime} report first; allowed: initial, combined_initial_final")


def _history(event: Event, summary: str) -> HistoryEntry:
    return HistoryEntry(
        event_type=event.event_type,
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        by=getattr(event, "by", None),
        role=getattr(event, "role", None),
        summary=summary,
    )


def provisional_clocks(aware_at: datetime, country: str, counting: Counting = "elapsed_days") -> list[Clock]:
    """The clocks an incident reported in `country` runs before anyone triages it."""
    return [
        _clock(deadline(regime, most_urgent(regime), aware_at, country, counting=counting), provisional=True)
        for regime in applicable_regimes(country)
    ]


def latest_awareness_overdue(
    now: datetime, country: str, by: timedelta = timedelta(hours=1), counting: Counting = "elapsed_days"
) -> datetime:
    """The latest awareness, in whole days before `now`, at which every provisional clock of an
    untriaged incident in `country` ran out at least `by` before `now`.

    Used by the demo and the tests for an incident that must be overdue whatever the weekday, the
    public holidays or the counting rule in force: the deadline is asked of the regulatory core,
    never assumed (three days back is overdue on five days of the week, not on seven)."""
    for days in range(1, 60):
        aware_at = now - timedelta(days=days)
        if all(c.due_at <= now - by for c in provisional_clocks(aware_at, country, counting)):
            return aware_at
    raise ValueError(f"no awareness within 60 days of {now.isoformat()} has run out every clock in {country}")


def evolve(state: Incident | None, event: Event) -> Incident | None:
    """The state after one event. Events that are not about this incident leave it unchanged."""
    match event:
        case IncidentReported() | IncidentCandidateRaised() if state is None:
            if isinstance(event, IncidentReported):
                told = {"status": "reported", "source": "report", "description": event.description,
                        "reported_harm": event.harm, "reporter_role": event.reporter_role,
                        "incident_date": event.incident_date}  # fmt: skip
                summary = f"reported by {event.reporter_role}, harm {event.harm}"
            else:
                told = {"status": "candidate", "source": "candidate", "description": event.summary,
                        "reporter_role": f"vigil:{event.source}"}  # fmt: skip
                summary = f"candidate raised by Vigil ({event.source})"
            opened = Incident(
                incident_id=event.incident_id,
                model_id=event.model_id,
                model_version=event.model_version,
                country=event.country,
                aware_at=event.aware_at,
                inference_ids=event.inference_ids,
                counting=event.counting,
                **told,
            )
            clocks = provisional_clocks(opened.aware_at, opened.country, opened.counting)
            opened = opened.model_copy(update={"clocks": clocks})
            return _step(opened, event, summary, {})
        case _ if state is None or getattr(event, "incident_id", None) != state.incident_id:
            return state
        case IncidentTriaged():
            clocks = classified_clocks(state, event, provisional=True)
            summary = f"triaged: harm {event.harm}, causality {event.causality}" + (
                ", public health threat" if event.public_health_threat else ""
            )
            return _step(state, event, summary, {"status": "triaged", "triage": event, "clocks": clocks})
        case ReportabilityDecided():
            regimes = ", ".join(c.regime for c in event.clocks)
            summary = f"reportable under {regimes}" if event.reportable else "not reportable"
            update = {
                "status": "assessed",
                "reportable": event.reportable,
                "clocks": event.clocks,
                "decision_rationale": event.rationale,
            }
            return _step(state, event, summary, update)
        case ReportSubmitted():
            reports = [*state.reports, event]
            done = {c.regime for c in state.clocks} <= {
                r.regime for r in reports if r.report_type in ("final", "combined_initial_final")
            }
            status = "final_submitted" if done else "reporting"
            summary = f"{event.report_type} report submitted under {event.regime} (ref. {event.reference})"
            return _step(state, event, summary, {"reports": reports, "status": status})
        case IncidentClosed():
            return _step(state, event, "closed", {"status": "closed", "closed_rationale": event.rationale})
        case ReportDueSoon() | ReportOverdue():
            kind = "due_soon" if isinstance(event, ReportDueSoon) else "overdue"
            what = "due soon" if kind == "due_soon" else "OVERDUE"
            summary = f"{event.regime} report {what}: due {event.due_at.isoformat()}"
            flag = clock_flag(event.regime, kind, event.due_at)
            return _step(state, event, summary, {"flags": [*state.flags, flag]})
    return state


def _step(state: Incident, event: Event, summary: str, update: dict[str, Any]) -> Incident:
    return state.model_copy(
        update={**update, "history": [*state.history, _history(event, summary)], "version": state.version + 1}
    )


def fold(events: Iterable[Event]) -> Incident | None:
    state: Incident | None = None
    for event in events:
        state = evolve(state, event)
    return state


def clock_events(state: Incident, now: datetime, due_soon: timedelta = DUE_SOON) -> list[ReportDueSoon | ReportOverdue]:
    """ReportDueSoon / ReportOverdue for open clocks that have not been flagged yet."""
    out: list[ReportDueSoon | ReportOverdue] = []
    cls: type[ReportDueSoon] | type[ReportOverdue]
    for clock in state.open_clocks():
        if now >= clock.due_at:
            kind, cls = "overdue", ReportOverdue
        elif now >= clock.due_at - due_soon:
            kind, cls = "due_soon", ReportDueSoon
        else:
            continue
        flag = clock_flag(clock.regime, kind, clock.due_at)
        if flag in state.flags:
            continue
        out.append(
            cls(
                event_id=uuid.uuid5(NAMESPACE, f"{state.incident_id}/{flag}"),
                occurred_at=now,
                incident_id=state.incident_id,
                regime=clock.regime,
                category=clock.category,
                due_at=clock.due_at,
            )
        )
    return out


def clock_flag(regime: str, kind: str, due_at: datetime) -> str:
    # Per deadline: a clock replaced by triage (a later due date) is flagged afresh.
    return f"{regime}/{kind}/{due_at.isoformat()}"


def clock_alert(event: ReportDueSoon | ReportOverdue, model_id: str) -> AlertRaised:
    overdue = isinstance(event, ReportOverdue)
    return alert_for(
        event,
        "IncidentReportOverdue" if overdue else "IncidentReportDueSoon",
        "critical" if overdue else "warning",
        f"{event.regime} report for incident {event.incident_id} "
        f"{'is overdue' if overdue else 'is due soon'} ({event.category}, due {event.due_at.isoformat()})",
        model_id=model_id,
        labels={"incident_id": str(event.incident_id), "regime": event.regime},
    )


@dataclass
class Inbox:
    """Incidents as on-call and the safety team watch them: how many, how close the deadlines are."""

    by_status: dict[tuple[str, str], int]  # (model_id, status) -> incidents
    overdue: dict[str, int]  # regime -> open clocks past their deadline
    next_due: dict[str, float]  # regime -> seconds to its nearest open deadline (negative when overdue)


def inbox(states: Iterable[Incident], now: datetime) -> Inbox:
    """Every status of every model and every regime is present, zero when nothing is there, so a
    count that drops to zero shows as zero rather than vanishing."""
    states = list(states)
    models = {s.model_id for s in states}
    by_status = {(m, status): 0 for m in models for status in get_args(Status)}
    overdue = dict.fromkeys(get_args(RegimeName), 0)
    next_due: dict[str, float] = {}
    for state in states:
        by_status[(state.model_id, state.status)] += 1
        for clock in state.open_clocks():
            left = (clock.due_at - now).total_seconds()
            overdue[clock.regime] += left <= 0
            next_due[clock.regime] = min(next_due.get(clock.regime, left), left)
    return Inbox(by_status, overdue, next_due)
