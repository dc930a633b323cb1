"""Oversight counts equal a pandas computation on the same cases; windows merge; the clock does not
take late-read reviews for missing ones; signals are raised once and end; escalations are checked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from vigil.events import InferenceMade, OutcomeObserved, OversightRestored, OversightViolation, ReviewRecorded
from vigil.oversight import (
    Awaiting,
    OversightClock,
    Tally,
    assess,
    awaiting,
    count_inference,
    count_review,
    count_unreviewed,
    describe,
    missed_escalation,
    overdue,
    oversight_alert,
    report,
    tallies_of,
    transitions,
    unmatched,
)
from vigil.policy import OversightPolicy, Policy, PolicyError, TransparencyPolicy
from vigil.rolling import RollingState

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
POLICY = OversightPolicy(review_within_minutes=30, grace_minutes=10, min_due=10)


def inference(at: datetime = T0, kind: str = "suggestion", patient_facing: dict | None = None) -> InferenceMade:
    return InferenceMade(
        event_id=uuid.uuid4(), occurred_at=at, model_id="ed-triage", model_version="1", deployment="st-mary",
        use_case="ed_triage", patient_ref="pt_x", output={"label": "urgent"}, output_kind=kind,
        patient_facing=patient_facing,
    )  # fmt: skip


def review(made: InferenceMade, after: timedelta, decision: str = "accepted", acted: bool = False) -> ReviewRecorded:
    at = made.occurred_at + after
    return ReviewRecorded(
        event_id=uuid.uuid4(), occurred_at=at, inference_id=made.event_id, model_id=made.model_id,
        reviewer_role="triage_nurse", decision=decision, reviewed_at=at, acted_before_review=acted,
    )  # fmt: skip


# (review delay in minutes or None for never, decision, acted before review, autonomous)
Case = tuple[int | None, str, bool, bool]
cases = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(0, 120)),
        st.sampled_from(["accepted", "modified", "overridden", "rejected"]),
        st.booleans(),
        st.booleans(),
    ),
    min_size=1,
    max_size=60,
)


def tally_of(rows: list[Case]) -> Tally:
    tally = Tally()
    for i, (delay, decision, acted, autonomous) in enumerate(rows):
        made = inference(T0 + timedelta(minutes=i), "autonomous_action" if autonomous else "suggestion")
        count_inference(tally, made, POLICY, TransparencyPolicy())
        output = awaiting(made, POLICY)
        assert output is not None
        if delay is None:
            if output.due:
                count_unreviewed(tally, output)
        else:
            count_review(tally, output, review(made, timedelta(minutes=delay), decision, acted), POLICY)
    return tally


@settings(max_examples=80, deadline=None)
@given(cases)
def test_counts_equal_pandas_on_the_same_cases(rows: list[Case]) -> None:
    frame = pd.DataFrame(rows, columns=["delay", "decision", "acted", "autonomous"])
    reviewed = frame[frame.delay.notna()]
    due = frame[~frame.autonomous]
    tally = tally_of(rows)
    assert tally.outputs == len(frame)
    assert tally.autonomous == frame.autonomous.sum()
    assert tally.due == len(due)
    assert tally.in_time == (due.delay <= POLICY.review_within_minutes).sum()
    assert tally.unreviewed == due.delay.isna().sum()
    assert tally.acted_before_review == reviewed.acted.sum()
    assert tally.decisions == reviewed.decision.value_counts().to_dict()
    assert tally.overridden == reviewed.decision.isin(["overridden", "rejected"]).sum()


@settings(max_examples=60, deadline=None)
@given(cases, st.integers(1, 5), st.randoms(use_true_random=False))
def test_days_merged_in_any_order_equal_one_tally(rows: list[Case], parts: int, random) -> None:
    whole = tally_of(rows)
    pieces = [tally_of(rows[i::parts]) for i in range(parts)]
    random.shuffle(pieces)
    merged = sum(pieces, Tally())
    assert merged.model_dump(exclude={"examples"}) == whole.model_dump(exclude={"examples"})
    for kind, ids in merged.examples.items():
        assert len(ids) <= 20 and len(ids) == min(20, sum(len(p.examples.get(kind, [])) for p in pieces))


@settings(max_examples=60, deadline=None)
@given(cases)
def test_the_store_query_counts_as_the_stream_does(rows: list[Case]) -> None:
    made, reviews = [], []
    for i, (delay, decision, acted, autonomous) in enumerate(rows):
        made.append(inference(T0 + timedelta(minutes=i), "autonomous_action" if autonomous else "suggestion"))
        made[-1] = made[-1].model_copy(update={"deployment": "rural" if i % 3 else "city"})
        if delay is not None:
            reviews.append(review(made[-1], timedelta(minutes=delay), decision, acted))
            reviews.append(review(made[-1], timedelta(minutes=1), "rejected"))  # a second opinion: not counted
    tallies, pending = tallies_of(made, reviews, POLICY, TransparencyPolicy(), T0 + timedelta(days=1), by="deployment")
    streamed = tally_of(rows)
    assert tallies["everyone"].model_dump(exclude={"examples"}) == streamed.model_dump(exclude={"examples"})
    assert sum((t for g, t in tallies.items() if g != "everyone"), Tally()).outputs == len(rows)
    assert not pending
    result = report(tallies, pending, POLICY, "since release")
    everyone = result.rows[0]
    assert everyone.group == "everyone"
    if streamed.due:
        low, high = proportion_confint(streamed.in_time, streamed.due, alpha=0.05, method="wilson")
        assert everyone.coverage == streamed.in_time / streamed.due
        assert everyone.coverage_ci == pytest.approx((low, high), abs=1e-9)


def test_outputs_still_within_their_review_time_are_pending_not_unreviewed() -> None:
    made = [inference(T0), inference(T0 + timedelta(minutes=50))]
    tallies, pending = tallies_of(made, [], POLICY, TransparencyPolicy(), T0 + timedelta(minutes=60))
    assert (tallies["everyone"].unreviewed, pending["everyone"]) == (1, 1)
    result = report(tallies, pending, POLICY.model_copy(update={"min_due": 1}), "7 days")
    assert result.verdict == [
        "review_coverage: 0.0% of 1 outputs due for review were reviewed in time (below 99.0%; 1 late or never, 7 days)"
    ]


def test_patient_facing_outputs_are_not_due_and_autonomous_ones_are_not_reviews_in_time() -> None:
    chat = inference(patient_facing={"disclaimer_shown": True, "emergency_detected": False, "escalated": False})
    assert awaiting(chat, POLICY) is None
    robot = awaiting(inference(kind="autonomous_action"), POLICY)
    assert robot is not None and not robot.due
    optional = awaiting(inference(), POLICY.model_copy(update={"review_required": False}))
    assert optional is not None and not optional.due


def test_reviews_read_after_their_inferences_are_not_taken_for_missing() -> None:
    clock = OversightClock()
    now = datetime(2026, 11, 25, tzinfo=UTC)
    made = [inference(T0 + timedelta(minutes=i)) for i in range(600)]
    for m in made:  # a catch-up: ten hours of inferences read before any review
        clock.saw_inference(m, now)
    first = Awaiting(inference_id=made[0].event_id, model_version="1", made_at=made[0].occurred_at, due=True)
    assert not overdue(first, clock, POLICY, now + timedelta(seconds=5))
    clock.saw_review(review(made[100], timedelta(minutes=5)), now)  # reviews reach 105 min in
    assert overdue(first, clock, POLICY, now)  # 40 min of review time and grace have passed
    late = Awaiting(inference_id=made[70].event_id, model_version="1", made_at=made[70].occurred_at, due=True)
    assert not overdue(late, clock, POLICY, now)


def test_a_review_stream_gone_silent_no_longer_holds_the_clock_back() -> None:
    started = datetime(2026, 11, 25, 9, tzinfo=UTC)
    clock = OversightClock()
    made = [inference(T0 + timedelta(minutes=i)) for i in range(600)]  # ten hours; nobody reviews any
    for i, m in enumerate(made):
        clock.saw_inference(m, started + timedelta(seconds=i))
    output = awaiting(made[0], POLICY)
    assert output is not None
    assert not overdue(output, clock, POLICY, started + timedelta(minutes=9))  # reviews may still be read
    assert overdue(output, clock, POLICY, started + timedelta(minutes=11))  # silent for longer than the grace
    stray = review(inference(T0 + timedelta(hours=20)), timedelta(0))
    clock.saw_review(stray, started + timedelta(minutes=11))
    assert not unmatched(stray, clock, POLICY, started + timedelta(minutes=11))


def test_a_restarted_worker_gives_the_backlog_time_before_silence_counts() -> None:
    stopped = datetime(2026, 11, 25, 9, tzinfo=UTC)
    clock = OversightClock()
    made = inference(T0)
    clock.saw_inference(made, stopped)
    output = awaiting(made, POLICY)
    assert output is not None
    restarted = stopped + timedelta(hours=3)  # reviews sent meanwhile wait in Kafka
    clock.woke(restarted)
    assert not overdue(output, clock, POLICY, restarted + timedelta(seconds=30))
    assert overdue(output, clock, POLICY, restarted + timedelta(minutes=41))


def test_reviews_of_a_model_whose_inferences_never_come_are_let_go_after_the_grace() -> None:
    started = datetime(2026, 11, 25, 9, tzinfo=UTC)
    clock = OversightClock()
    reviews = [review(inference(T0 + timedelta(minutes=i)), timedelta(minutes=5)) for i in range(67)]
    for i, r in enumerate(reviews[:37]):  # one every ten seconds, and no inference at all
        clock.saw_review(r, started + timedelta(seconds=10 * i))
    assert not unmatched(reviews[0], clock, POLICY, started + timedelta(minutes=6))  # inferences may come late
    for i, r in enumerate(reviews[37:], start=37):
        clock.saw_review(r, started + timedelta(seconds=10 * i))
    after = started + timedelta(minutes=11)  # none came for longer than the grace
    assert unmatched(reviews[0], clock, POLICY, after) and not unmatched(reviews[-1], clock, POLICY, after)


def test_when_all_is_silent_event_time_passes_as_wall_clock_time_but_a_replay_is_not_overtaken() -> None:
    started = datetime(2026, 11, 25, 9, tzinfo=UTC)
    clock = OversightClock()
    made = inference(T0)
    clock.saw_inference(made, started)
    output = awaiting(made, POLICY)
    assert output is not None
    assert not overdue(output, clock, POLICY, started + timedelta(seconds=30))
    assert not overdue(output, clock, POLICY, started + timedelta(minutes=39))
    assert overdue(output, clock, POLICY, started + timedelta(minutes=41))  # nobody reviewed it for 41 minutes
    replayed = OversightClock()
    for i in range(3000):  # a replay: a day of events in 50 wall-clock minutes, the reviews five behind
        replayed.saw_inference(inference(T0 + timedelta(minutes=i)), started + timedelta(seconds=i))
        if i >= 5:
            replayed.saw_review(review(made, timedelta(minutes=i - 5)), started + timedelta(seconds=i))
    assert replayed.time(started + timedelta(seconds=3000), timedelta(minutes=10)) == T0 + timedelta(minutes=2994)


def window(in_time: int, late: int = 0, unreviewed: int = 0, **more: Any) -> Tally:
    return Tally(in_time=in_time, late=late, unreviewed=unreviewed, outputs=in_time + late + unreviewed, **more)


def test_assess_judges_shares_only_from_min_due_and_counts_always() -> None:
    few = assess(window(5, unreviewed=4), POLICY)
    assert [f.kind for f in few] == ["acted_before_review", "autonomous_action"]
    found = {f.kind: f for f in assess(window(90, late=5, unreviewed=5, autonomous=1), POLICY)}
    assert found["review_coverage"].value == pytest.approx(0.9) and found["review_coverage"].violated
    assert found["review_coverage"].cases == 10 and found["review_coverage"].of == 100
    assert found["autonomous_action"].violated and not found["acted_before_review"].violated
    allowed = POLICY.model_copy(update={"autonomous_allowed": True})
    assert "autonomous_action" not in {f.kind for f in assess(window(90, autonomous=1), allowed)}
    overrides = window(0, decisions={"accepted": 30, "overridden": 12, "rejected": 3})
    share = {f.kind: f for f in assess(overrides, POLICY)}["override_rate"]
    assert share.value == pytest.approx(15 / 45) and share.violated


def test_a_violation_is_raised_once_while_it_persists_then_restored() -> None:
    state = RollingState()
    state.counted(T0, uuid.uuid4())
    bad = window(90, unreviewed=10)
    bad.note("review_coverage", uuid.uuid4())
    first = transitions(state, "ed-triage", "1", bad, assess(bad, POLICY), 7)
    assert [(type(e), e.kind) for e in first] == [(OversightViolation, "review_coverage")]
    assert first[0].inference_ids == [uuid.UUID(bad.examples["review_coverage"][0])]
    assert transitions(state, "ed-triage", "1", bad, assess(bad, POLICY), 7) == []
    assert transitions(state, "ed-triage", "1", window(5), assess(window(5), POLICY), 7) == []  # too few to judge
    ended = transitions(state, "ed-triage", "1", window(100), assess(window(100), POLICY), 7)
    assert [type(e) for e in ended] == [OversightRestored]
    assert isinstance(ended[0], OversightRestored)
    assert ended[0].violation_event_id == first[0].event_id and ended[0].value == 1.0
    again = transitions(state, "ed-triage", "1", bad, assess(bad, POLICY), 7)
    assert again[0].event_id not in (first[0].event_id, ended[0].event_id)


def test_alerts_are_critical_for_actions_without_a_clinician_and_name_no_patient() -> None:
    state = RollingState()
    state.counted(T0, uuid.uuid4())
    acted = window(60, acted_before_review=2, autonomous=1)
    raised = transitions(state, "ed-triage", "1", acted, assess(acted, POLICY), 7)
    alerts = {e.kind: oversight_alert(e) for e in raised if isinstance(e, OversightViolation)}
    assert {k: a.severity for k, a in alerts.items()} == {
        "acted_before_review": "critical",
        "autonomous_action": "critical",
    }
    assert all(a.labels == {"kind": k} and "pt_" not in a.summary for k, a in alerts.items())
    assert "2 outputs acted on before review (7 days; the policy allows 0)" in alerts["acted_before_review"].summary
    coverage = [
        e
        for e in transitions(
            RollingState(latest=T0), "m", "1", window(50, late=50), assess(window(50, late=50), POLICY), 7
        )
        if isinstance(e, OversightViolation)
    ]
    assert oversight_alert(coverage[0]).severity == "warning"
    assert describe(coverage[0], "7 days").startswith("50.0% of 100 outputs due for review were reviewed in time")


def test_the_oversight_policy_is_part_of_the_policy_file() -> None:
    policy = Policy({"models": {"ed-triage": {"oversight": {"review_within_minutes": 30}}}})
    assert policy.for_model("ed-triage").oversight.review_within_minutes == 30
    assert policy.for_model("other").oversight.min_coverage == 0.99
    with pytest.raises(PolicyError, match=r"oversight\.review_within"):
        Policy({"defaults": {"oversight": {"review_within": 30}}})


def test_an_emergency_the_bot_did_not_escalate_is_a_candidate_and_a_critical_alert() -> None:
    quiet = {"disclaimer_shown": True, "emergency_detected": False, "escalated": False}
    chat = inference(patient_facing=quiet)
    outcome = OutcomeObserved(
        event_id=uuid.uuid4(), occurred_at=T0 + timedelta(days=1), inference_id=chat.event_id, model_id="ed-triage",
        observed_at=T0 + timedelta(days=1), label="emergency", source="follow_up", emergency=True,
    )  # fmt: skip
    found = missed_escalation(chat, outcome)
    assert found is not None
    candidate, alert = found
    assert candidate.inference_ids == [chat.event_id] and candidate.source == "missed_escalation"
    assert alert.severity == "critical" and alert.caused_by == candidate.event_id
    escalated = inference(patient_facing={**quiet, "emergency_detected": True, "escalated": True})
    assert missed_escalation(escalated, outcome.model_copy(update={"inference_id": escalated.event_id})) is None
    assert missed_escalation(chat, outcome.model_copy(update={"emergency": False})) is None
