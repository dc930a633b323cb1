"""Human oversight of clinical outputs: is every output a clinician should review reviewed in time
and before it is acted on, does any model act autonomously where only suggestions are allowed, how
often do clinicians override it, and did a patient-facing bot escalate an emergency?

The worker pairs each ReviewRecorded with its InferenceMade by inference id, in either order, and
counts both in the bucket of the inference's day; a version's rolling window is the sum of its
buckets over the last `window_days` days. An output due for review that has none when the model's
oversight clock passes its deadline (plus the grace) counts as unreviewed. That clock is event
time: the earlier of how far the model's inferences and its reviews have come, so reviews read
after their inferences (in a catch-up or a replay) are not taken for missing; a stream that has
gone silent no longer holds it back, so outputs nobody reviews are still found.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import get_args

from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from vigil.alerts import alert_for, incident_candidate
from vigil.events import (
    AlertRaised,
    Counting,
    IncidentCandidateRaised,
    InferenceMade,
    OutcomeObserved,
    OversightKind,
    OversightRestored,
    OversightViolation,
    ReviewRecorded,
    Severity,
    TransparencyKind,
    TransparencyRestored,
    TransparencyViolation,
)
from vigil.incident_alerts import escalation_alert
from vigil.join import Position, takes
from vigil.policy import OversightPolicy, TransparencyPolicy
from vigil.rolling import RollingState

NAMESPACE = uuid.UUID("0c3d5a7e-2b4f-4e1a-9d8c-6f5b3a2e1d40")
EXAMPLES = 20  # inference ids a tally keeps per kind, for the audit trail of a violation
OVERRIDES = ("overridden", "rejected")
COUNTS = ("outputs", "in_time", "late", "unreviewed", "acted_before_review", "autonomous",
          "explained", "consented", "scored", "patient_facing", "disclaimed")  # fmt: skip


# --- counting ----------------------------------------------------------------------------------


class Tally(BaseModel):
    """Oversight counts of one model version's outputs (of a day, or of a window): they add up."""

    outputs: int = 0
    in_time: int = 0  # due for review, reviewed within the policy's time
    late: int = 0  # due for review, reviewed after it
    unreviewed: int = 0  # due for review, never reviewed
    acted_before_review: int = 0
    autonomous: int = 0  # autonomous actions where the policy allows only suggestions
    # Transparency (vigil.transparency): outputs with an explanation, a recorded consent, a score;
    # patient-facing outputs, and those that showed the disclaimer.
    explained: int = 0
    consented: int = 0
    scored: int = 0
    patient_facing: int = 0
    disclaimed: int = 0
    decisions: dict[str, int] = Field(default_factory=dict)
    examples: dict[str, list[str]] = Field(default_factory=dict)  # kind -> inference ids

    @property
    def due(self) -> int:
        return self.in_time + self.late + self.unreviewed

    @property
    def reviews(self) -> int:
        return sum(self.decisions.values())

    @property
    def overridden(self) -> int:
        return sum(self.decisions.get(d, 0) for d in OVERRIDES)

    def __add__(self, other: Tally) -> Tally:
        decisions = dict(Counter(self.decisions) + Counter(other.decisions))
        examples = {
            kind: (self.examples.get(kind, []) + other.examples.get(kind, []))[:EXAMPLES]
            for kind in {*self.examples, *other.examples}
        }
        counts = {name: getattr(self, name) + getattr(other, name) for name in COUNTS}
        return Tally(**counts, decisions=decisions, examples=examples)

    def note(self, kind: OversightKind | TransparencyKind, inference_id: uuid.UUID) -> None:
        ids = self.examples.setdefault(kind, [])
        if len(ids) < EXAMPLES:
            ids.append(str(inference_id))


class OversightDay(BaseModel):
    """A version's tally of a day, and how far in each stream the records it counts have come
    (vigil.join.takes): a record read again after a crash adds its counts once."""

    tally: Tally = Field(default_factory=Tally)
    through: dict[str, int] = Field(default_factory=dict)

    def add(self, counts: Mapping[Position, Tally]) -> None:
        """Each record's counts, in the order the records were read."""
        for at, tally in counts.items():
            if takes(self.through, at):
                self.tally += tally


class Awaiting(BaseModel):
    """What the worker keeps of an inference while its review may still come."""

    inference_id: uuid.UUID
    model_version: str
    made_at: datetime
    due: bool  # a review in time is required


def awaiting(inference: InferenceMade, policy: OversightPolicy) -> Awaiting | None:
    """None for patient-facing outputs: they reach the patient unreviewed, by design."""
    if inference.patient_facing is not None:
        return None
    due = policy.review_required and inference.output_kind == "suggestion"
    return Awaiting(
        inference_id=inference.event_id, model_version=inference.model_version, made_at=inference.occurred_at, due=due
    )


def count_inference(
    tally: Tally, inference: InferenceMade, policy: OversightPolicy, transparency: TransparencyPolicy
) -> None:
    """The output's oversight and transparency counts; example ids only of the kinds the policies judge
    (every output's counts travel to the second stage: ids nobody reads would travel too)."""
    tally.outputs += 1
    if inference.output_kind == "autonomous_action" and not policy.autonomous_allowed:
        tally.autonomous += 1
        tally.note("autonomous_action", inference.event_id)
    output, facing = inference.output, inference.patient_facing
    carried: dict[TransparencyKind, bool] = {
        "explanation_present": inference.explanation_present,
        "consent_recorded": inference.consent_recorded,
        "score_present": output.score is not None or bool(output.class_scores),
    }
    judged = transparency.limits()
    for kind, present in carried.items():
        if not present and judged[kind] is not None:
            tally.note(kind, inference.event_id)
    tally.explained += carried["explanation_present"]
    tally.consented += carried["consent_recorded"]
    tally.scored += carried["score_present"]
    if facing is not None:
        tally.patient_facing += 1
        tally.disclaimed += facing.disclaimer_shown
        if not facing.disclaimer_shown and judged["disclaimer_shown"] is not None:
            tally.note("disclaimer_shown", inference.event_id)


def count_review(tally: Tally, output: Awaiting, review: ReviewRecorded, policy: OversightPolicy) -> None:
    tally.decisions[review.decision] = tally.decisions.get(review.decision, 0) + 1
    if review.decision in OVERRIDES:
        tally.note("override_rate", output.inference_id)
    if review.acted_before_review:
        tally.acted_before_review += 1
        tally.note("acted_before_review", output.inference_id)
    if output.due:
        if review.reviewed_at - output.made_at <= timedelta(minutes=policy.review_within_minutes):
            tally.in_time += 1
        else:
            tally.late += 1
            tally.note("review_coverage", output.inference_id)


def count_unreviewed(tally: Tally, output: Awaiting) -> None:
    tally.unreviewed += 1
    tally.note("review_coverage", output.inference_id)


# --- the oversight clock -----------------------------------------------------------------------


class Watermark(BaseModel):
    at: datetime  # event time: how far a stream has come
    heard: datetime  # wall-clock time of its last event

    def advance(self, at: datetime, now: datetime) -> None:
        self.at, self.heard = max(self.at, at), now


class OversightClock(BaseModel):
    """How far one model's inferences and reviews have come on one input partition (each partition
    keeps its own: its outputs fall due by the records it has read). While both are heard from, the earlier
    decides what is overdue, so a stream read behind the other (a catch-up, a replay) holds the
    clock back. A stream silent for longer than `idle` no longer does: when nobody reviews, the
    inferences alone move the clock; when all is silent, event time passes as wall-clock time does."""

    made: Watermark | None = None
    reviewed: Watermark | None = None
    ticked: int = -1  # the offset of the last tick that expired outputs by this clock, on its partition

    def saw_inference(self, inference: InferenceMade, now: datetime) -> None:
        at = inference.occurred_at
        if self.made is None:
            self.made = Watermark(at=at, heard=now)
        self.made.advance(at, now)
        if self.reviewed is None:  # no review is due before the first output
            self.reviewed = Watermark(at=at, heard=now)

    def saw_review(self, review: ReviewRecorded, now: datetime) -> None:
        at = review.reviewed_at
        if self.reviewed is None:
            self.reviewed = Watermark(at=at, heard=now)
        self.reviewed.advance(at, now)
        if self.made is None:  # until an inference comes, its output came before the first review
            self.made = Watermark(at=at, heard=now)

    def woke(self, at: datetime) -> None:
        """The worker started at `at`: what the streams sent while it was down is still to be read,
        so their silence counts from then, not from their last events before it stopped."""
        for mark in (self.made, self.reviewed):
            if mark is not None and mark.heard < at:
                mark.heard = at

    def time(self, now: datetime, idle: timedelta) -> datetime | None:
        if self.made is None or self.reviewed is None:
            return None
        marks = (self.made, self.reviewed)
        if active := [m.at for m in marks if now - m.heard < idle]:
            return min(active)
        return max(m.at + (now - m.heard) for m in marks)


class ModelOversight(BaseModel):
    """What the worker's second stage remembers of one model: each version's rolling window."""

    versions: dict[str, RollingState] = Field(default_factory=dict)


def clock_now(clock: OversightClock, policy: OversightPolicy, now: datetime) -> datetime | None:
    """The model's oversight time: what review deadlines are judged against."""
    # A stream silent for as long as the grace it would be given has stopped, not fallen behind.
    return clock.time(now, idle=timedelta(minutes=max(1, policy.grace_minutes)))


def review_deadline(output: Awaiting, policy: OversightPolicy) -> datetime:
    """Past this (its review time and the grace), a review still to come would not count."""
    return output.made_at + timedelta(minutes=policy.review_within_minutes + policy.grace_minutes)


def review_let_go(review: ReviewRecorded, policy: OversightPolicy) -> datetime:
    """A review whose inference has not come when the inferences have passed it by the grace is of
    a patient-facing output, of an output already counted unreviewed, or of one never sent."""
    return review.reviewed_at + timedelta(minutes=policy.grace_minutes)


def overdue(output: Awaiting, clock: OversightClock, policy: OversightPolicy, now: datetime) -> bool:
    time = clock_now(clock, policy, now)
    return time is not None and time >= review_deadline(output, policy)


def unmatched(review: ReviewRecorded, clock: OversightClock, policy: OversightPolicy, now: datetime) -> bool:
    time = clock_now(clock, policy, now)
    return time is not None and time >= review_let_go(review, policy)


# --- judging ----------------------------------------------------------------------------------


class Finding(BaseModel):
    """A policy's verdict on a window: the value against its limit, the cases of how many."""

    model_config = ConfigDict(frozen=True)

    kind: OversightKind | TransparencyKind
    value: float
    limit: float
    cases: int
    of: int
    violated: bool


def assess(tally: Tally, policy: OversightPolicy) -> list[Finding]:
    """The policy's verdicts on a window. Shares are judged from `min_due` outputs on; a single
    action before review, or autonomous one, is a finding whatever the numbers."""
    found = [
        Finding(
            kind="acted_before_review", value=tally.acted_before_review, limit=policy.max_acted_before_review,
            cases=tally.acted_before_review, of=tally.reviews,
            violated=tally.acted_before_review > policy.max_acted_before_review,
        )
    ]  # fmt: skip
    if policy.review_required and tally.due >= policy.min_due:
        coverage = tally.in_time / tally.due
        found.append(
            Finding(kind="review_coverage", value=coverage, limit=policy.min_coverage, cases=tally.due - tally.in_time,
                    of=tally.due, violated=coverage < policy.min_coverage)
        )  # fmt: skip
    if not policy.autonomous_allowed:
        found.append(
            Finding(kind="autonomous_action", value=tally.autonomous, limit=0, cases=tally.autonomous, of=tally.outputs,
                    violated=tally.autonomous > 0)
        )  # fmt: skip
    if tally.reviews >= policy.min_due:
        share = tally.overridden / tally.reviews
        found.append(
            Finding(kind="override_rate", value=share, limit=policy.max_override_share, cases=tally.overridden,
                    of=tally.reviews, violated=share > policy.max_override_share)
        )  # fmt: skip
    return found


OversightSignal = OversightViolation | OversightRestored
# Transparency's findings (vigil.transparency) ride on the same tallies, windows and standing signals.
TransparencySignal = TransparencyViolation | TransparencyRestored
TRANSPARENCY_KINDS = frozenset(get_args(TransparencyKind))


def transitions(
    state: RollingState, model_id: str, version: str, window: Tally, findings: list[Finding], window_days: int
) -> list[OversightSignal | TransparencySignal]:
    """A violation when a finding appears, a restoration when a judged finding is back within the
    policy; nothing while it persists. Updates the state's standing signals."""
    assert state.latest is not None
    events: list[OversightSignal | TransparencySignal] = []
    for f in findings:
        common = {
            "occurred_at": state.latest, "model_id": model_id, "model_version": version, "kind": f.kind,
            "value": f.value, "limit": f.limit, "cases": f.cases, "of": f.of, "window_days": window_days,
            "window_end": state.latest,
        }  # fmt: skip
        violated, restored = (
            (TransparencyViolation, TransparencyRestored) if f.kind in TRANSPARENCY_KINDS
            else (OversightViolation, OversightRestored)
        )  # fmt: skip
        if f.violated and f.kind not in state.standing:
            ids = [uuid.UUID(i) for i in window.examples.get(f.kind, [])]
            violation = violated.model_validate(
                {**common, "event_id": state.next_id(NAMESPACE, model_id, version, f.kind), "inference_ids": ids}
            )
            state.standing[f.kind] = violation.event_id
            events.append(violation)
        elif not f.violated and f.kind in state.standing:
            raised = state.standing.pop(f.kind)
            event_id = state.next_id(NAMESPACE, model_id, version, f.kind)
            events.append(restored.model_validate({**common, "event_id": event_id, "violation_event_id": raised}))
    return events


def describe(finding: Finding | OversightViolation, span: str, ended: bool = False) -> str:
    """The finding in a sentence, for an alert or a report; `span` says over what, e.g. '7 days'."""
    f = finding
    if f.kind == "review_coverage":
        return (
            f"{f.value:.1%} of {f.of} outputs due for review were reviewed in time "
            f"({'back at or above' if ended else 'below'} {f.limit:.1%}; {f.cases} late or never, {span})"
        )
    if f.kind == "override_rate":
        return (
            f"clinicians overrode or rejected {f.value:.1%} of {f.of} reviewed outputs "
            f"({'back within' if ended else 'above'} {f.limit:.1%}, {span})"
        )
    what = "outputs acted on before review" if f.kind == "acted_before_review" else "autonomous actions"
    if ended:
        return f"no more {what} than the policy allows ({span})"
    return f"{f.cases} {what} ({span}; the policy allows {f.limit:g})"


def oversight_alert(event: OversightSignal) -> AlertRaised:
    # Acting without a clinician is the harm oversight exists to prevent; thin coverage and
    # frequent overrides are warnings that it may be happening.
    severity: Severity = "critical" if event.kind in ("acted_before_review", "autonomous_action") else "warning"
    ended = isinstance(event, OversightRestored)
    return alert_for(
        event,
        "OversightViolation",
        severity,
        f"{event.model_id} {event.model_version}: {describe(event, f'{event.window_days} days', ended)}",
        model_id=event.model_id,
        model_version=event.model_version,
        labels={"kind": event.kind},
        resolved=ended,
    )


# --- the same counts from the event store, at once ----------------------------------------------

EVERYONE = "everyone"


def group_of(inference: InferenceMade, by: str) -> str:
    """`deployment`, or an attribute of the inference's subgroup."""
    return inference.deployment if by == "deployment" else inference.subgroup.get(by, "unknown")


def tallies_of(
    inferences: Iterable[InferenceMade],
    reviews: Iterable[ReviewRecorded],
    policy: OversightPolicy,
    transparency: TransparencyPolicy,
    now: datetime,
    by: str | None = None,
) -> tuple[dict[str, Tally], Counter[str]]:
    """The worker's counts for everyone (and each group of `by`), from every review recorded so far:
    each inference with its first review. An output due for review without one counts as never
    reviewed once `now` is past its deadline and the grace, and as pending before that."""
    first: dict[uuid.UUID, ReviewRecorded] = {}
    for seen in reviews:
        first.setdefault(seen.inference_id, seen)
    wait = timedelta(minutes=policy.review_within_minutes + policy.grace_minutes)
    tallies: dict[str, Tally] = {EVERYONE: Tally()}
    pending: Counter[str] = Counter()
    for inference in inferences:
        output, review = awaiting(inference, policy), first.get(inference.event_id)
        for group in {EVERYONE, group_of(inference, by)} if by else (EVERYONE,):
            tally = tallies.setdefault(group, Tally())
            count_inference(tally, inference, policy, transparency)
            if output is None:
                continue
            if review is not None:
                count_review(tally, output, review, policy)
            elif output.due and now >= output.made_at + wait:
                count_unreviewed(tally, output)
            elif output.due:
                pending[group] += 1
    return tallies, pending


Interval = tuple[float, float]


def proportion(k: int, n: int) -> tuple[float | None, Interval | None]:
    """A proportion with its 95 % Wilson interval (scipy)."""
    if not n:
        return None, None
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return k / n, (float(ci.low), float(ci.high))


class GroupRow(BaseModel):
    """One group's oversight: its outputs, how they were reviewed, and the shares with intervals."""

    group: str
    outputs: int
    in_time: int
    late: int
    unreviewed: int
    pending: int
    coverage: float | None = Field(description="share of due outputs reviewed in time")
    coverage_ci: Interval | None
    reviews: int
    decisions: dict[str, int]
    override_share: float | None
    override_share_ci: Interval | None
    acted_before_review: int
    autonomous: int


def carried(tally: Tally) -> dict[TransparencyKind, tuple[int, int]]:
    """Transparency per kind: outputs that carried it, of the outputs it applies to."""
    return {
        "disclaimer_shown": (tally.disclaimed, tally.patient_facing),
        "explanation_present": (tally.explained, tally.outputs),
        "consent_recorded": (tally.consented, tally.outputs),
        "score_present": (tally.scored, tally.outputs),
    }


class TransparencyRow(BaseModel):
    """One group's shares of outputs carrying each (None where nothing it applies to was made)."""

    group: str
    outputs: int
    patient_facing: int
    disclaimer_shown: float | None
    explanation_present: float | None
    consent_recorded: float | None
    score_present: float | None


def transparency_row(group: str, tally: Tally) -> TransparencyRow:
    shares = {kind: (k / n if n else None) for kind, (k, n) in carried(tally).items()}
    return TransparencyRow(group=group, outputs=tally.outputs, patient_facing=tally.patient_facing, **shares)


class OversightReport(BaseModel):
    """Rows per group (everyone first), the policy's findings on everyone, the verdict in words."""

    rows: list[GroupRow]
    transparency: list[TransparencyRow] = Field(default_factory=list, description="the same groups' transparency")
    findings: list[Finding]
    verdict: list[str]


class ModelOversightReport(OversightReport):
    """A registered model's oversight from the event store."""

    model_id: str
    model_version: str | None
    window_days: int | None
    by: str | None
    review_within_minutes: int


def report(tallies: dict[str, Tally], pending: Counter[str], policy: OversightPolicy, span: str) -> OversightReport:
    """Rows per group (everyone first) with coverage and override share and their intervals; the
    policy's findings on everyone, and the verdict in words."""
    rows = []
    for group in sorted(tallies, key=lambda g: (g != EVERYONE, g)):
        t = tallies[group]
        coverage, coverage_ci = proportion(t.in_time, t.due)
        overrides, overrides_ci = proportion(t.overridden, t.reviews)
        rows.append(
            GroupRow(
                group=group, outputs=t.outputs, in_time=t.in_time, late=t.late, unreviewed=t.unreviewed,
                pending=pending[group], coverage=coverage, coverage_ci=coverage_ci, reviews=t.reviews,
                decisions=dict(sorted(t.decisions.items())), override_share=overrides,
                override_share_ci=overrides_ci, acted_before_review=t.acted_before_review, autonomous=t.autonomous,
            )
        )  # fmt: skip
    findings = assess(tallies[EVERYONE], policy)
    verdict = [f"{f.kind}: {describe(f, span)}" for f in findings if f.violated]
    return OversightReport(
        rows=rows,
        transparency=[transparency_row(row.group, tallies[row.group]) for row in rows],
        findings=findings,
        verdict=verdict or ["within policy"],
    )


# --- missed escalations -------------------------------------------------------------------------


def needs_escalation_watch(inference: InferenceMade) -> bool:
    """Only patient-facing outputs that did not escalate can miss an emergency."""
    return inference.patient_facing is not None and not inference.patient_facing.escalated


def missed_escalation(
    inference: InferenceMade, outcome: OutcomeObserved, counting: Counting = "elapsed_days"
) -> tuple[IncidentCandidateRaised, AlertRaised] | None:
    """An emergency the bot did not escalate becomes an incident candidate and a critical alert."""
    if not (needs_escalation_watch(inference) and outcome.emergency):
        return None
    candidate = incident_candidate(
        "missed_escalation",
        inference.event_id,
        occurred_at=outcome.occurred_at,
        model_id=inference.model_id,
        model_version=inference.model_version,
        summary=(
            f"A patient-facing output of {inference.model_id} {inference.model_version} at "
            f"{inference.deployment} was not escalated, but the follow-up ({outcome.source}) found an emergency."
        ),
        country=inference.country,
        counting=counting,
        inference_ids=[inference.event_id],
    )
    return candidate, escalation_alert(candidate)
