"""The incident decider: lifecycle, refusals that name the allowed transitions, clocks, replay."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.events import Counting, Event, IncidentReported, ReportOverdue
from vigil.incidents import (
    Close,
    DecideReportability,
    DomainError,
    InvalidTransition,
    SubmitReport,
    Triage,
    check_awareness,
    clock_events,
    decide,
    evolve,
    fold,
    inbox,
    latest_awareness_overdue,
    provisional_clocks,
)

AWARE = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
OFFICER: dict[str, Any] = {"by": "so-017", "role": "safety_officer"}


def reported(country: str = "DE", counting: Counting = "elapsed_days") -> IncidentReported:
    return IncidentReported(
        event_id=uuid.uuid4(),
        occurred_at=AWARE,
        incident_id=uuid.UUID(int=42),
        reporter_role="clinician",
        model_id="symptom-chat",
        model_version="0.9.1",
        harm="serious_deterioration",
        description="Chest pain not escalated by the chatbot.",
        country=country,
        aware_at=AWARE,
        counting=counting,
    )


SERIOUS = Triage(**OFFICER, harm="serious_deterioration", causality="probable", expected=False, rationale="r")


def run(commands, start=None, now=AWARE + timedelta(hours=1)):
    events = [start or reported()]
    state = fold(events)
    for command in commands:
        new = decide(state, command, now)
        events += new
        for e in new:
            state = evolve(state, e)
    return state, events


def test_a_serious_incident_runs_its_whole_lifecycle() -> None:
    state, events = run(
        [
            SERIOUS,
            DecideReportability(**OFFICER, reportable=True, rationale="serious deterioration, probable"),
            SubmitReport(**OFFICER, regime="eu-mdr", report_type="initial", reference="BfArM-1"),
            SubmitReport(**OFFICER, regime="eu-ai-act", report_type="combined_initial_final", reference="AI-7"),
            SubmitReport(**OFFICER, regime="eu-mdr", report_type="final", reference="BfArM-1"),
            Close(**OFFICER, rationale="field safety corrective action completed"),
        ]
    )
    assert state.status == "closed"
    assert [c.category for c in state.clocks] == ["death_or_serious_deterioration", "serious_incident"]
    # 10 and 15 elapsed days from Friday 6 March; Regulation 1182/71 would move Saturday the 21st to
    # Monday the 23rd, which each clock states beside its own.
    assert [c.last_day.isoformat() for c in state.clocks] == ["2026-03-16", "2026-03-21"]
    assert [(c.counting, str(c.other_last_day)) for c in state.clocks] == [
        ("elapsed_days", "2026-03-16"),
        ("elapsed_days", "2026-03-23"),
    ]
    assert fold(events) == state
    assert [h.event_type for h in state.history][-1] == "IncidentClosed"


def test_invalid_transitions_name_what_is_allowed() -> None:
    state, _ = run([])
    with pytest.raises(InvalidTransition, match="cannot SubmitReport an incident that is reported; allowed: Triage"):
        decide(state, SubmitReport(**OFFICER, regime="eu-mdr", report_type="initial", reference="x"), AWARE)
    state, _ = run([SERIOUS, DecideReportability(**OFFICER, reportable=True, rationale="r")])
    with pytest.raises(InvalidTransition, match="allowed: SubmitReport"):
        decide(state, Close(**OFFICER, rationale="r"), AWARE)
    with pytest.raises(InvalidTransition, match="submit the initial eu-mdr report first"):
        decide(state, SubmitReport(**OFFICER, regime="eu-mdr", report_type="final", reference="x"), AWARE)
    with pytest.raises(DomainError, match="no reporting obligation under 'fda-803'"):
        decide(state, SubmitReport(**OFFICER, regime="fda-803", report_type="initial", reference="x"), AWARE)
    with pytest.raises(DomainError, match="unknown incident"):
        decide(None, SERIOUS, AWARE)


def test_not_reportable_needs_no_report_and_temporary_harm_cannot_be_reportable() -> None:
    mild = Triage(**OFFICER, harm="temporary", causality="possible", expected=True, rationale="r")
    state, _ = run([mild])
    with pytest.raises(DomainError, match="no reportable category"):
        decide(state, DecideReportability(**OFFICER, reportable=True, rationale="r"), AWARE)
    state, _ = run(
        [mild, DecideReportability(**OFFICER, reportable=False, rationale="r"), Close(**OFFICER, rationale="r")]
    )
    assert state.status == "closed" and state.open_clocks() == []


def test_an_incident_counted_by_regulation_1182_71_runs_to_its_latest_arguable_day() -> None:
    """The policy's other rule, stated on the opening event: triage and replay keep it."""
    state, events = run([SERIOUS], start=reported(counting="regulation_1182_71"))
    assert state.counting == "regulation_1182_71" and fold(events) == state
    assert [(c.last_day.isoformat(), str(c.other_last_day)) for c in state.clocks] == [
        ("2026-03-16", "2026-03-16"),
        ("2026-03-23", "2026-03-21"),
    ]


def test_an_untriaged_incident_by_elapsed_days_is_overdue_on_monday() -> None:
    """2 elapsed days from Friday 6 March end on Sunday: overdue from midnight in Berlin."""
    state, _ = run([])
    assert [c.last_day.isoformat() for c in state.clocks] == ["2026-03-08", "2026-03-08"]
    assert clock_events(state, datetime(2026, 3, 8, 22, 30, tzinfo=UTC)) != []  # due soon, not yet overdue
    late = clock_events(state, datetime(2026, 3, 8, 23, 30, tzinfo=UTC))  # 00:30 on Monday in Berlin
    assert [e.event_type for e in late] == ["ReportOverdue", "ReportOverdue"]


def test_an_untriaged_incident_runs_provisional_worst_case_clocks_and_goes_overdue() -> None:
    state, _ = run([], start=reported(counting="regulation_1182_71"))
    assert all(c.provisional for c in state.clocks)
    assert [c.last_day.isoformat() for c in state.clocks] == ["2026-03-10", "2026-03-10"]  # 2 days, 1182/71
    assert clock_events(state, AWARE + timedelta(hours=2)) == []
    soon = clock_events(state, datetime(2026, 3, 9, 23, 30, tzinfo=UTC))
    assert [e.event_type for e in soon] == ["ReportDueSoon", "ReportDueSoon"]
    for e in soon:
        state = evolve(state, e)
    assert clock_events(state, datetime(2026, 3, 9, 23, 45, tzinfo=UTC)) == []  # raised once
    late = clock_events(state, datetime(2026, 3, 11, 8, 0, tzinfo=UTC))
    assert [e.event_type for e in late] == ["ReportOverdue", "ReportOverdue"]
    assert late == clock_events(state, datetime(2026, 3, 11, 8, 0, tzinfo=UTC))  # same ids: idempotent
    for e in late:
        state = evolve(state, e)
    assert clock_events(state, datetime(2026, 3, 12, tzinfo=UTC)) == []


def test_the_inbox_counts_every_status_and_the_nearest_deadline_per_regime() -> None:
    open_one, _ = run([])
    other = reported().model_copy(update={"incident_id": uuid.UUID(int=43), "aware_at": AWARE - timedelta(days=1)})
    older, _ = run([], start=other)
    closed, _ = run([Triage(**OFFICER, harm="none", causality="not_related", expected=True, rationale="r"),
                     DecideReportability(**OFFICER, reportable=False, rationale="r"),
                     Close(**OFFICER, rationale="r")])  # fmt: skip
    now = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)  # past the older one's deadline, before the other's
    summary = inbox([open_one, older, closed], now)
    assert summary.by_status[("symptom-chat", "reported")] == 2 and summary.by_status[("symptom-chat", "closed")] == 1
    assert summary.by_status[("symptom-chat", "triaged")] == 0
    # The older one's provisional clocks ended at midnight in Berlin, 13 hours before `now`.
    assert summary.overdue == {"eu-mdr": 1, "eu-ai-act": 1, "fda-803": 0}
    assert summary.next_due == {"eu-mdr": -13 * 3600, "eu-ai-act": -13 * 3600}


def test_triage_replaces_the_provisional_clock() -> None:
    state, _ = run([SERIOUS])
    assert [c.last_day.isoformat() for c in state.clocks] == ["2026-03-16", "2026-03-21"]
    assert clock_events(state, datetime(2026, 3, 11, tzinfo=UTC)) == []


def test_awareness_in_the_future_is_refused() -> None:
    with pytest.raises(DomainError, match="in the future"):
        check_awareness(AWARE + timedelta(days=1), AWARE)


def test_the_same_command_twice_yields_the_same_event_id() -> None:
    state, _ = run([])
    assert decide(state, SERIOUS, AWARE)[0].event_id == decide(state, SERIOUS, AWARE + timedelta(seconds=5))[0].event_id


commands = st.sampled_from(
    [
        SERIOUS,
        Triage(**OFFICER, harm="none", causality="not_related", expected=True, rationale="r"),
        Triage(
            **OFFICER, harm="death", causality="established", expected=False, rationale="r", public_health_threat=True
        ),
        DecideReportability(**OFFICER, reportable=True, rationale="r"),
        DecideReportability(**OFFICER, reportable=False, rationale="r"),
        SubmitReport(**OFFICER, regime="eu-mdr", report_type="initial", reference="a"),
        SubmitReport(**OFFICER, regime="eu-mdr", report_type="combined_initial_final", reference="a"),
        SubmitReport(**OFFICER, regime="eu-mdr", report_type="follow_up", reference="a"),
        SubmitReport(**OFFICER, regime="eu-mdr", report_type="final", reference="a"),
        SubmitReport(**OFFICER, regime="eu-ai-act", report_type="combined_initial_final", reference="b"),
        Close(**OFFICER, rationale="r"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=14), st.sampled_from(["DE", "FR", "US"]))
def test_any_command_sequence_replays_to_the_same_state_and_refusals_change_nothing(cmds, country) -> None:
    events: list[Event] = [reported(country)]
    state = fold(events)
    for i, command in enumerate(cmds):
        before = state
        try:
            new = decide(state, command, AWARE + timedelta(minutes=i))
        except DomainError:
            assert state == before
            continue
        events += new
        for e in new:
            state = evolve(state, e)
    assert fold(events) == state
    # As of any earlier point, the fold over fewer events is the state at that point.
    for k in range(1, len(events)):
        partial = fold(events[:k])
        assert partial is not None and partial.version == k


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@pytest.mark.parametrize("country", ["DE", "FR", "US"])
def test_the_demo_overdue_incident_is_overdue_on_every_day_of_two_years(country: str) -> None:
    """The demo's untriaged report must page on-call as overdue whatever the weekday, the public
    holidays and the time of day the demo runs: two whole years, three times a day."""
    for day in _days(date(2026, 1, 1), date(2027, 12, 31)):
        for hour, minute in ((0, 5), (11, 30), (23, 55)):
            now = datetime.combine(day, time(hour, minute), UTC)
            aware_at = latest_awareness_overdue(now, country)
            assert aware_at < now
            report = reported(country).model_copy(update={"aware_at": aware_at, "occurred_at": aware_at})
            state = evolve(None, report)
            assert state is not None and state.clocks
            overdue = {e.regime for e in clock_events(state, now) if isinstance(e, ReportOverdue)}
            assert overdue == {c.regime for c in state.clocks}, (now, aware_at)
            # The latest such day: a day later, some clock would still be running.
            later = provisional_clocks(aware_at + timedelta(days=1), country)
            assert any(c.due_at > now - timedelta(hours=1) for c in later), (now, aware_at)
