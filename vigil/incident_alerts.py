"""Incident alerts that end when their cause ends, and stay active while it stands.

An incident raises three kinds of alert: `IncidentReportDueSoon` and `IncidentReportOverdue` for a
reporting clock (one per regime and deadline, recorded in the incident's flags), and
`EscalationMissed` for the candidate a missed emergency escalation opened. From the incident's
state alone, `follow_ups` tells what each needs now:

- its cause has ended (the report for that regime was filed, the incident was closed, triage
  replaced the clock, a due-soon clock is now overdue, the candidate was triaged): the alert,
  resolved;
- its cause stands: the alert again every half of `active_for` (how long Alertmanager keeps an
  alert Vigil does not resend), so that it never expires while the problem is there.

Ids are name-based (the alert's own, then `/resolved` or `/refresh/<n>`), so two workers, a
restart or every tick of the clock compute the same follow-ups, and the store keeps each once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

from vigil.alerts import NAMESPACE as ALERT_NAMESPACE
from vigil.alerts import alert_for, follow_up
from vigil.events import AlertRaised, Clock, IncidentCandidateRaised, ReportDueSoon, ReportOverdue
from vigil.incidents import DUE_SOON, NAMESPACE, Incident, clock_alert

ESCALATION_SOURCE = "vigil:missed_escalation"


def follow_ups(state: Incident, now: datetime, active_for: timedelta) -> list[AlertRaised]:
    """The resolutions and refreshes this incident's alerts need at `now`. An incident unchanged
    for longer than `active_for` needs no resolution: Alertmanager has let its alerts go."""
    out = []
    recently_changed = bool(state.history) and now - state.history[-1].occurred_at <= active_for
    every = active_for / 2
    for alert, since, stands in _raised(state, now):
        if not stands:
            if recently_changed:
                out.append(follow_up(alert, at=now, resolved=True, about="resolved"))
        elif (n := int((now - since) / every)) >= 1:
            out.append(follow_up(alert, at=since + n * every, resolved=False, about=f"refresh/{n}"))
    return out


def _raised(state: Incident, now: datetime) -> Iterator[tuple[AlertRaised, datetime, bool]]:
    """Each alert the incident raised: the alert as first sent, since when, and whether its cause stands."""
    open_clocks: dict[tuple[str, datetime], Clock] = {(c.regime, c.due_at): c for c in state.open_clocks()}
    for flag in state.flags:
        regime, kind, due = flag.split("/", 2)
        due_at = datetime.fromisoformat(due)
        clock = open_clocks.get((regime, due_at))
        cls = ReportOverdue if kind == "overdue" else ReportDueSoon
        cause = cls(
            event_id=uuid.uuid5(NAMESPACE, f"{state.incident_id}/{flag}"),  # as clock_events names it
            occurred_at=due_at if kind == "overdue" else due_at - DUE_SOON,
            incident_id=state.incident_id,
            regime=regime,
            category=clock.category if clock else "a clock since replaced",
            due_at=due_at,
        )
        stands = clock is not None and (kind == "overdue" or now < due_at)
        yield clock_alert(cause, state.model_id), cause.occurred_at, stands
    if state.reporter_role == ESCALATION_SOURCE:
        yield escalation_alert(_candidate_of(state)), state.aware_at, state.status == "candidate"


def escalation_alert(candidate: IncidentCandidateRaised) -> AlertRaised:
    """The critical alert of a candidate that a missed emergency escalation opened."""
    return alert_for(
        candidate,
        "EscalationMissed",
        "critical",
        f"Emergency not escalated by {candidate.model_id}; incident candidate {candidate.incident_id} awaits triage",
        model_id=candidate.model_id,
        model_version=candidate.model_version,
        labels={"incident_id": str(candidate.incident_id)},
    )


def _candidate_of(state: Incident) -> IncidentCandidateRaised:
    """The candidate event as it was raised, as far as its alert's id and labels go."""
    return IncidentCandidateRaised(
        event_id=uuid.uuid5(ALERT_NAMESPACE, f"candidate/{state.incident_id}"),
        occurred_at=state.aware_at,
        incident_id=state.incident_id,
        model_id=state.model_id,
        model_version=state.model_version,
        source="missed_escalation",
        summary=state.description,
        country=state.country,
        aware_at=state.aware_at,
    )
