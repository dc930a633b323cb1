"""Incident alerts end when their cause ends and are refreshed while it stands (vigil/incident_alerts.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.unit.test_incidents import OFFICER, SERIOUS, run
from vigil.events import InferenceMade, OutcomeObserved, PatientFacing
from vigil.incident_alerts import follow_ups
from vigil.incidents import (
    Close,
    DecideReportability,
    Incident,
    SubmitReport,
    Triage,
    clock_alert,
    clock_events,
    decide,
    evolve,
    fold,
)
from vigil.oversight import missed_escalation

DAY = timedelta(hours=24)


def overdue(state: Incident, now: datetime) -> tuple[Incident, list]:
    """The state after the worker's clock raised what is due at `now`, and the alerts it sent."""
    raised = clock_events(state, now)
    for event in raised:
        state = evolve(state, event) or state
    return state, [clock_alert(e, state.model_id) for e in raised]


def of_mdr(alerts: list) -> list:
    return [a for a in alerts if a.labels.get("regime") == "eu-mdr"]


def names(alerts: list) -> list[tuple[str, str, bool]]:
    return sorted((a.alert_name, a.labels.get("regime", ""), a.resolved) for a in alerts)


def test_an_overdue_alert_is_refreshed_while_its_report_is_missing_and_resolved_when_it_is_filed() -> None:
    # A death: 10 days under the MDR and under the AI Act, so both clocks end together.
    death = Triage(**OFFICER, harm="death", causality="probable", expected=False, rationale="r")
    state, _ = run([death, DecideReportability(**OFFICER, reportable=True, rationale="r")])
    due = min(c.due_at for c in state.clocks)
    assert {c.due_at for c in state.clocks} == {due}
    state, sent = overdue(state, max(c.due_at for c in state.clocks) + timedelta(minutes=1))
    assert names(sent) == [("IncidentReportOverdue", "eu-ai-act", False), ("IncidentReportOverdue", "eu-mdr", False)]
    # Within half of the alert's active time nothing is needed; after it, the same alert again.
    assert of_mdr(follow_ups(state, due + timedelta(hours=11), DAY)) == []
    refreshed = of_mdr(follow_ups(state, due + timedelta(hours=13), DAY))
    first = of_mdr(sent)[0]
    assert [(a.alert_name, a.labels, a.severity, a.resolved) for a in refreshed] == [
        (first.alert_name, first.labels, "critical", False)
    ]
    assert refreshed[0].occurred_at == due + timedelta(hours=12) and refreshed[0].event_id != first.event_id
    assert of_mdr(follow_ups(state, due + timedelta(hours=13, minutes=5), DAY)) == refreshed  # the same on every tick
    later = of_mdr(follow_ups(state, due + timedelta(hours=25), DAY))
    assert len(later) == 1 and later[0].event_id != refreshed[0].event_id  # the next refresh

    # The MDR report is filed: its alert resolves, the AI Act's keeps being refreshed.
    filed = due + timedelta(hours=30)
    state = fold_more(state, SubmitReport(**OFFICER, regime="eu-mdr", report_type="initial", reference="B-1"), filed)
    after = follow_ups(state, filed + timedelta(minutes=1), DAY)
    assert names(after) == [("IncidentReportOverdue", "eu-ai-act", False), ("IncidentReportOverdue", "eu-mdr", True)]
    resolved = next(a for a in after if a.resolved)
    assert resolved.labels == first.labels and resolved.alert_name == first.alert_name


def fold_more(state: Incident, command, now: datetime) -> Incident:
    for event in decide(state, command, now):
        state = evolve(state, event) or state
    return state


def test_closing_resolves_every_alert_and_an_incident_long_unchanged_needs_nothing() -> None:
    state, _ = run([SERIOUS, DecideReportability(**OFFICER, reportable=True, rationale="r")])
    late = max(c.due_at for c in state.clocks) + timedelta(hours=1)
    state, _ = overdue(state, late)
    for regime in ("eu-mdr", "eu-ai-act"):
        state = fold_more(state, SubmitReport(**OFFICER, regime=regime, report_type="combined_initial_final",
                                              reference="r"), late)  # fmt: skip
    state = fold_more(state, Close(**OFFICER, rationale="done"), late)
    assert all(a.resolved for a in follow_ups(state, late + timedelta(minutes=1), DAY))
    assert len(follow_ups(state, late + timedelta(minutes=1), DAY)) == 2
    assert follow_ups(state, late + 2 * DAY, DAY) == []  # Alertmanager let them go long ago


def test_triage_replaces_the_provisional_clocks_and_resolves_their_alerts() -> None:
    state, _ = run([])
    provisional = max(c.due_at for c in state.clocks)
    state, sent = overdue(state, provisional + timedelta(minutes=1))
    assert len(sent) == 2
    state = fold_more(state, SERIOUS, provisional + timedelta(hours=1))  # 10 and 15 days: not yet due
    ups = follow_ups(state, provisional + timedelta(hours=2), DAY)
    assert names(ups) == [("IncidentReportOverdue", "eu-ai-act", True), ("IncidentReportOverdue", "eu-mdr", True)]
    assert {a.labels["incident_id"] for a in ups} == {str(state.incident_id)}


def test_a_due_soon_alert_resolves_once_the_deadline_passes() -> None:
    state, _ = run([])
    due = min(c.due_at for c in state.clocks)
    state, sent = overdue(state, due - timedelta(hours=2))
    assert {a.alert_name for a in sent} == {"IncidentReportDueSoon"}
    assert follow_ups(state, due - timedelta(hours=12, minutes=1), DAY) == []
    assert [a.resolved for a in follow_ups(state, due - timedelta(hours=1), DAY)] == [False, False]  # refreshed
    ended = follow_ups(state, due + timedelta(seconds=1), DAY)
    assert {(a.alert_name, a.resolved) for a in ended} == {("IncidentReportDueSoon", True)}


def test_a_missed_escalation_alert_resolves_when_its_candidate_is_triaged() -> None:
    now = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
    chat = InferenceMade(
        event_id=uuid.uuid4(), occurred_at=now, model_id="symptom-chat", model_version="0.9.1", deployment="web",
        patient_ref="p" * 16, use_case="symptom_information", output={"label": "self_care"},
        patient_facing=PatientFacing(disclaimer_shown=True, emergency_detected=False, escalated=False), country="DE",
    )  # fmt: skip
    outcome = OutcomeObserved(
        event_id=uuid.uuid4(), occurred_at=now + timedelta(hours=3), inference_id=chat.event_id,
        model_id="symptom-chat", observed_at=now + timedelta(hours=3), label="emergency", critical_condition=True,
        source="follow_up", emergency=True,
    )  # fmt: skip
    found = missed_escalation(chat, outcome)
    assert found is not None
    candidate, alert = found
    state = fold([candidate])
    assert state is not None
    refreshed = follow_ups(state, candidate.aware_at + timedelta(hours=12, minutes=1), DAY)
    assert [(a.alert_name, a.labels, a.model_version, a.resolved) for a in refreshed] == [
        (alert.alert_name, alert.labels, alert.model_version, False)
    ]
    state = fold_more(state, SERIOUS, candidate.aware_at + timedelta(hours=13))
    ended = follow_ups(state, candidate.aware_at + timedelta(hours=13, minutes=1), DAY)
    assert [(a.alert_name, a.labels, a.resolved) for a in ended] == [(alert.alert_name, alert.labels, True)]
    assert ended[0].event_id != alert.event_id  # a follow-up of its own, recorded once
