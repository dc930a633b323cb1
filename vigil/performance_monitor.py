"""Streaming subgroup performance: the outcome join's rules, daily confusion buckets, and when the
policy's verdicts become ThresholdBreached / DisparityDetected events (and their ends).

The worker joins each OutcomeObserved to its InferenceMade by inference id, in either order, and
adds the pair to the bucket of the inference's day. A model version's rolling window is the sum of
its buckets over the last `window_days` days before its latest joined inference. Signals stand
until the verdict changes; event ids count the times a signal was raised, so reprocessing after a
crash yields the same ids.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import Field

from vigil.alerts import alert_for, incident_candidate
from vigil.events import (
    AlertRaised,
    Counting,
    DisparityDetected,
    DisparityResolved,
    IncidentCandidateRaised,
    InferenceMade,
    ModelRegistered,
    OutcomeObserved,
    Resources,
    Severity,
    SubgroupEstimate,
    ThresholdBreached,
    ThresholdRestored,
)
from vigil.join import Position, takes
from vigil.performance import (
    Breach,
    Capped,
    Counts,
    Disparity,
    Estimate,
    Pair,
    Rules,
    Subgroup,
    assess,
    estimate,
    judged,
    name_of,
    positive_labels,
    tally,
)
from vigil.plan import AlertName
from vigil.rolling import RollingState
from vigil.validation import Rejected

P = TypeVar("P")  # what a day counts: a pair, or in tests a stand-in
NAMESPACE = uuid.UUID("3a9c7e51-6d2b-4f08-b1e4-7c5a2d9f0b63")
Bucket = dict[str, Counts]  # key: json [label, [[attribute, value], ...]]
Signal = ThresholdBreached | ThresholdRestored | DisparityDetected | DisparityResolved


def waiting_form(inference: InferenceMade) -> InferenceMade:
    """What the join keeps of a waiting inference: not its features, costs or patient token, which
    neither performance nor oversight needs; features are most of an inference's size."""
    return inference.model_copy(update={"features": {}, "patient_ref": "", "resources": Resources()})


Side = InferenceMade | OutcomeObserved


def join_key(event: Side) -> str:
    return str(event.event_id if isinstance(event, InferenceMade) else event.inference_id)


def meet(waiting: Side | None, event: Side) -> tuple[InferenceMade, OutcomeObserved] | None:
    """The pair when `event` completes the side waiting under its join key; None when it has to
    wait, or when it repeats the waiting side (the first one keeps waiting)."""
    if isinstance(event, InferenceMade) and isinstance(waiting, OutcomeObserved):
        return event, waiting
    if isinstance(event, OutcomeObserved) and isinstance(waiting, InferenceMade):
        return waiting, event
    return None


def mismatched(inference: InferenceMade, outcome: OutcomeObserved) -> Rejected | None:
    if outcome.model_id == inference.model_id:
        return None
    return Rejected(
        f"outcome names model {outcome.model_id!r}, but its inference was made by {inference.model_id!r}; "
        "not counted in performance",
        "model_mismatch",
        "model_id",
    )


def refused(outcome: OutcomeObserved, model: ModelRegistered | None) -> Rejected | None:
    """Why an outcome cannot count towards performance, if it cannot."""
    if model is None:
        return Rejected(
            f"outcome for model {outcome.model_id!r}, which no ModelRegistered event names; not counted in performance",
            "unknown_model",
            "model_id",
        )
    if model.labels and outcome.label not in model.labels:
        return Rejected(
            f"label {outcome.label!r} is not in {model.model_id}'s label set ({', '.join(model.labels)}); "
            "not counted in performance",
            "unknown_label",
            "label",
        )
    return None


def pair_of(inference: InferenceMade, outcome: OutcomeObserved, attributes: Mapping[str, str]) -> Pair:
    output = inference.output
    return Pair(attributes, output.label, output.score, output.class_scores, outcome.label)


def bucket_key(label: str, subgroup: Subgroup) -> str:
    return json.dumps([label, [list(pair) for pair in subgroup]])


def add_pairs(bucket: Bucket, pairs: Iterable[Pair], model: ModelRegistered, by: list[str], depth: int) -> None:
    """Adds the pairs' confusion counts to a day's bucket (tallied together: a bucket's keys are
    built once, not once per pair)."""
    positives = positive_labels(model.labels, model.critical_labels)
    for (label, subgroup), counts in tally(pairs, positives, by, depth).items():
        key = bucket_key(label, subgroup)
        bucket[key] = bucket.get(key, Counts()) + counts


@dataclass
class Day:
    """One model version's bucket for a day, and how far in each stream the pairs it counts have
    come: a pair's place is where the record that completed it was read (Met.at), and pairs are
    counted in the order they meet, so a pair at or before `through` of its topic-partition has
    been counted. That is how a pair given again after a crash (vigil.join) is told apart: its
    join entry may have reached the changelog and this day's counts not."""

    counts: Bucket = field(default_factory=dict)
    through: dict[str, int] = field(default_factory=dict)  # vigil.join.takes

    def new(self, pairs: Iterable[tuple[P, Position]]) -> list[P]:
        """The pairs this day has not counted yet, marked as counted from now on."""
        return [pair for pair, at in pairs if takes(self.through, at)]


def encode(day: Day) -> bytes:
    return json.dumps({"counts": {k: c.as_dict() for k, c in day.counts.items()}, "through": day.through}).encode()


def decode(raw: bytes | None) -> Day:
    if not raw:
        return Day()
    stored = json.loads(raw)
    return Day({k: Counts(**v) for k, v in stored["counts"].items()}, stored["through"])


def window_table(buckets: Iterable[Bucket]) -> dict[tuple[str, Subgroup], Counts]:
    table: dict[tuple[str, Subgroup], Counts] = {}
    for bucket in buckets:
        for key, counts in bucket.items():
            label, pairs = json.loads(key)
            index = (label, tuple((a, v) for a, v in pairs))
            table[index] = table.get(index, Counts()) + counts
    return table


class PerformanceState(RollingState):
    """What the worker remembers of one model version."""

    seen: dict[str, list[str]] = Field(default_factory=dict)  # attribute values admitted (the rest are 'other')
    levels: dict[str, str] = Field(default_factory=dict)  # signal key -> warning / confirmed, or significance

    def capped(self, limit: int) -> Capped:
        return Capped(limit, self.seen)


def _estimate(e: Estimate) -> SubgroupEstimate:
    return SubgroupEstimate(
        subgroup=dict(e.subgroup), value=e.value, ci_low=e.low, ci_high=e.high, successes=e.successes, trials=e.trials
    )


def transitions(
    state: PerformanceState,
    model_id: str,
    version: str,
    table: Mapping[tuple[str, Subgroup], Counts],
    rules: Rules,
    window_days: int,
) -> list[Signal]:
    """Signals for verdicts that appear, change level or end; updates the state's standing ones."""
    assert state.latest is not None
    breaches, disparities = assess(table, rules)
    common = {"model_id": model_id, "model_version": version, "window_days": window_days,
              "window_end": state.latest, "occurred_at": state.latest}  # fmt: skip
    now: dict[str, tuple[str, Breach | Disparity]] = {}
    for b in breaches:
        now[f"breach/{b.label}/{b.metric}/{name_of(b.estimate.subgroup)}"] = (b.level, b)
    for d in disparities:
        now[f"disparity/{d.label}/{d.metric}/{','.join(d.attributes)}"] = (str(d.significant), d)

    def new_id(key: str) -> uuid.UUID:
        return state.next_id(NAMESPACE, model_id, version, key)

    events: list[Signal] = []
    for key, (level, found) in sorted(now.items()):
        if state.levels.get(key) == level:
            continue
        if isinstance(found, Breach):
            event: Signal = ThresholdBreached(
                event_id=new_id(key), label=found.label, metric=found.metric, threshold=found.threshold,
                level=found.level, estimate=_estimate(found.estimate), **common,
            )  # fmt: skip
        else:
            event = DisparityDetected(
                event_id=new_id(key), label=found.label, metric=found.metric, attributes=list(found.attributes),
                best=_estimate(found.best), worst=_estimate(found.worst), gap=found.gap, limit=found.limit,
                p_value=found.p_value, significant=found.significant, **common,
            )  # fmt: skip
        state.standing[key], state.levels[key] = event.event_id, level
        events.append(event)
    for key in sorted(set(state.standing) - set(now)):
        members = _judged_estimates(key, table, rules)
        if not members:
            continue  # no verdict without enough outcomes: the signal stands
        raised = state.standing.pop(key)
        del state.levels[key]
        events.append(_ended(key, raised, members, rules, new_id(key), common))
    return events


def _subgroups_of_key(key: str, table: Mapping[tuple[str, Subgroup], Counts]) -> list[tuple[str, Subgroup]]:
    kind, label, _, rest = key.split("/", 3)
    if kind == "breach":
        return [(label, s) for (lab, s) in table if lab == label and name_of(s) == rest]
    attributes = rest.split(",")
    return [(label, s) for (lab, s) in table if lab == label and [a for a, _ in s] == attributes]


def _judged_estimates(key: str, table: Mapping[tuple[str, Subgroup], Counts], rules: Rules) -> list[Estimate]:
    """The estimates of the signal's subgroups that have enough outcomes to be judged."""
    return [
        e for k in _subgroups_of_key(key, table) if judged(table[k], rules) and (e := estimate(k[1], table[k], rules))
    ]


def _ended(
    key: str, raised: uuid.UUID, members: list[Estimate], rules: Rules, event_id: uuid.UUID, common: dict[str, Any]
) -> Signal:
    label, metric = key.split("/")[1:3]
    best, worst = max(members, key=lambda e: e.value), min(members, key=lambda e: e.value)
    if key.startswith("breach/"):
        return ThresholdRestored(
            event_id=event_id, label=label, metric=metric, threshold=rules.threshold or 0.0,
            estimate=_estimate(worst), breach_event_id=raised, **common,
        )  # fmt: skip
    return DisparityResolved(
        event_id=event_id, label=label, metric=metric, attributes=key.split("/")[3].split(","), best=_estimate(best),
        worst=_estimate(worst), gap=best.value - worst.value, limit=rules.disparity, p_value=1.0, significant=False,
        detected_event_id=raised, **common,
    )  # fmt: skip


def performance_alert(event: Signal) -> AlertRaised:
    severity: Severity
    name: AlertName
    if isinstance(event, ThresholdBreached):
        where = name_of(tuple(event.estimate.subgroup.items()))
        ended = isinstance(event, ThresholdRestored)
        summary = (
            f"{event.model_id} {event.model_version}: {event.metric} for {event.label!r} in {where} "
            f"{'is back at or above' if ended else 'is below'} {event.threshold:g}: {event.estimate.value:.3f} "
            f"(95% CI {event.estimate.ci_low:.3f}-{event.estimate.ci_high:.3f}, {event.estimate.trials} outcomes, "
            f"{event.window_days} days)"
        )
        name, severity = "SafetyThresholdBreached", "critical" if event.level == "confirmed" else "warning"
        labels = {"metric": event.metric, "label": event.label, "subgroup": where, "level": event.level}
    else:
        ended = isinstance(event, DisparityResolved)
        summary = (
            f"{event.model_id} {event.model_version}: {event.metric} gap across {', '.join(event.attributes)} "
            f"{'is back within' if ended else 'exceeds'} {event.limit:g}: "
            f"{name_of(tuple(event.best.subgroup.items()))} {event.best.value:.3f} vs "
            f"{name_of(tuple(event.worst.subgroup.items()))} {event.worst.value:.3f} "
            f"(CI {event.worst.ci_low:.3f}-{event.worst.ci_high:.3f})"
            + ("" if ended else f"; {'significant' if event.significant else 'not significant'}, p={event.p_value:.3g}")
        )
        name, severity = "EquityDisparity", "critical" if event.significant else "warning"
        labels = {"metric": event.metric, "label": event.label, "attributes": ",".join(event.attributes)}
    return alert_for(
        event, name, severity, summary, model_id=event.model_id, model_version=event.model_version, labels=labels,
        resolved=ended,
    )  # fmt: skip


def breach_candidate(
    event: ThresholdBreached, model: ModelRegistered, counting: Counting = "elapsed_days"
) -> IncidentCandidateRaised | None:
    """A confirmed breach on a high-risk model is proposed as an incident for triage."""
    if model.risk_class != "high" or event.level != "confirmed" or isinstance(event, ThresholdRestored):
        return None
    where = name_of(tuple(event.estimate.subgroup.items()))
    return incident_candidate(
        "threshold_breach",
        event.event_id,
        occurred_at=event.occurred_at,
        model_id=event.model_id,
        model_version=event.model_version,
        summary=(
            f"Confirmed breach of the safety threshold: {event.metric} for {event.label!r} in {where} is "
            f"{event.estimate.value:.3f} (95% CI {event.estimate.ci_low:.3f}-{event.estimate.ci_high:.3f}), "
            f"below {event.threshold:g} over {event.window_days} days."
        ),
        country=model.countries[0] if model.countries else None,
        counting=counting,
    )
