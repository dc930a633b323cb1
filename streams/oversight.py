"""Human oversight: reviews joined to their inferences, outputs past their review time counted,
rolling windows judged against the policy."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import faust
from faust.types import Message

from services.observability import OVERSIGHT, OVERSIGHT_ACTIVE, REVIEWS_UNMATCHED
from streams.app import (
    STARTED,
    app,
    each_batch,
    each_in_batch,
    emit,
    is_tick,
    log,
    model_of,
    monitoring,
    send_dead_letter,
    settings,
    table_key,
    writing_for,
)
from vigil.events import CLOCK_TOPIC, Event, InferenceMade, ReviewRecorded
from vigil.oversight import (
    Awaiting,
    ModelOversight,
    OversightClock,
    Tally,
    assess,
    awaiting,
    count_inference,
    count_review,
    count_unreviewed,
    overdue,
    oversight_alert,
    transitions,
    unmatched,
)
from vigil.rolling import RollingState
from vigil.validation import Rejected, canonical_json

# Inferences and reviews are keyed by model_id, so the tables are co-partitioned.
oversight_events = app.topic(
    *settings.topics(("inference.v1", "review.v1", CLOCK_TOPIC)), value_serializer="raw", key_serializer="raw"
)
oversight_join = app.Table("oversight-join", default=None, key_type=bytes, value_type=bytes)  # inference_id -> side
oversight_state = app.Table("oversight-state", default=None, key_type=bytes, value_type=bytes)  # model_id -> state
oversight_days = app.Table("oversight-days", default=None, key_type=bytes, value_type=bytes)  # version, day -> Tally


@app.agent(oversight_events)
async def watch_oversight(stream: faust.StreamT) -> None:
    """Reviews joined to their inferences, outputs past their review time counted; windows judged."""
    await each_batch(stream, "watch_oversight", _oversight_batch)


class _Oversight:
    def __init__(self) -> None:
        self.models: dict[str, ModelOversight] = {}
        self.tallies: dict[bytes, Tally] = {}  # counted in this batch, per (model, version, day)
        self.last_of: dict[str, faust.EventT] = {}

    def model(self, model_id: str) -> ModelOversight:
        if model_id not in self.models:
            self.models[model_id] = _stored_oversight(model_id)
        return self.models[model_id]

    def tally(self, model_id: str, version: str, at: datetime, inference_id: uuid.UUID) -> Tally:
        self.model(model_id).versions.setdefault(version, RollingState()).counted(at, inference_id)
        return self.tallies.setdefault(table_key(model_id, version, at.date().isoformat()), Tally())


def _stored_oversight(model_id: str) -> ModelOversight:
    stored = oversight_state.get(model_id.encode())
    model = ModelOversight.model_validate_json(stored) if stored else ModelOversight()
    model.clock.woke(STARTED)
    return model


async def _oversight_batch(records: list[faust.EventT]) -> None:
    batch = _Oversight()
    now = datetime.now(UTC)

    async def handle(record: faust.EventT, event: Event | None) -> None:
        if isinstance(event, InferenceMade):
            batch.last_of[event.model_id] = record
            _oversee_inference(event, record.message, batch, now)
        elif isinstance(event, ReviewRecorded):
            batch.last_of[event.model_id] = record
            await _oversee_review(event, record.message, batch, now)
        elif is_tick(record):
            _expire_reviews(record, batch, now)

    await each_in_batch(records, "watch_oversight", handle)
    for key, tally in batch.tallies.items():
        writing_for(batch.last_of[model_of(key)])
        if stored := oversight_days.get(key):
            tally = Tally.model_validate_json(stored) + tally
        oversight_days[key] = tally.model_dump_json().encode()
    for model_id, version in sorted({tuple(key.decode().split("\x1f")[:2]) for key in batch.tallies}):
        writing_for(batch.last_of[model_id])
        await _judge_oversight(model_id, version, batch.models[model_id].versions[version])
    for model_id, model in batch.models.items():
        writing_for(batch.last_of[model_id])
        oversight_state[model_id.encode()] = model.model_dump_json().encode()


def _join_side(key: bytes) -> dict | None:
    """What waits under an inference id: the inference's compact entry, or a review."""
    return json.loads(raw) if (raw := oversight_join.get(key)) else None


def _join_entry(side: str, model_id: str, message: Message, body: str) -> bytes:
    return json.dumps({"side": side, "model_id": model_id, "partition": message.partition, "body": body}).encode()


def _oversee_inference(inference: InferenceMade, message: Message, batch: _Oversight, now: datetime) -> None:
    policy = monitoring.for_model(inference.model_id).oversight
    model = batch.model(inference.model_id)
    model.clock.partition = message.partition
    model.clock.saw_inference(inference, now)
    key = str(inference.event_id).encode()
    stored = _join_side(key)
    if stored and stored["side"] == "inference":
        return  # a repeat of an inference still within its review time
    tally = batch.tally(inference.model_id, inference.model_version, inference.occurred_at, inference.event_id)
    count_inference(tally, inference, policy)
    output = awaiting(inference, policy)
    if output is None:
        if stored:  # a review of a patient-facing output: nothing to count it against
            del oversight_join[key]
            REVIEWS_UNMATCHED.labels(inference.model_id).inc()
        return
    if stored:
        count_review(tally, output, ReviewRecorded.model_validate_json(stored["body"]), policy)
        output.reviewed = True
    oversight_join[key] = _join_entry("inference", inference.model_id, message, output.model_dump_json())


async def _oversee_review(review: ReviewRecorded, message: Message, batch: _Oversight, now: datetime) -> None:
    model = batch.model(review.model_id)
    model.clock.partition = message.partition
    model.clock.saw_review(review, now)
    key = str(review.inference_id).encode()
    stored = _join_side(key)
    if stored is None:
        oversight_join[key] = _join_entry("review", review.model_id, message, canonical_json(review))
        return
    if stored["model_id"] != review.model_id:
        why = Rejected(
            f"review names model {review.model_id!r}, but its inference was made by {stored['model_id']!r}; "
            "not counted in oversight",
            "model_mismatch",
            "model_id",
        )
        await send_dead_letter(why, message.topic, message.partition, message.offset, message.value)
        return
    if stored["side"] == "review":
        return  # the first review of an output decides; a repeat or a second opinion does not count again
    output = Awaiting.model_validate_json(stored["body"])
    if output.reviewed:
        return
    policy = monitoring.for_model(review.model_id).oversight
    count_review(batch.tally(review.model_id, output.model_version, output.made_at, output.inference_id), output,
                 review, policy)  # fmt: skip
    output.reviewed = True
    oversight_join[key] = _join_entry("inference", review.model_id, message, output.model_dump_json())


def _expire_reviews(tick: faust.EventT, batch: _Oversight, now: datetime) -> None:
    """On the tick's partition: counts outputs past their review time as unreviewed and forgets
    reviews whose inference did not come."""
    partition = tick.message.partition
    clocks: dict[str, OversightClock] = {}
    for key, raw in list(oversight_join.items()):
        entry = json.loads(raw)
        if entry["partition"] != partition:
            continue
        model_id = entry["model_id"]
        if model_id not in clocks:
            clocks[model_id] = (batch.models.get(model_id) or _stored_oversight(model_id)).clock
        clock, policy = clocks[model_id], monitoring.for_model(model_id).oversight
        if entry["side"] == "inference":
            output = Awaiting.model_validate_json(entry["body"])
            if overdue(output, clock, policy, now):
                del oversight_join[key]
                if output.due and not output.reviewed:
                    batch.last_of.setdefault(model_id, tick)
                    count_unreviewed(batch.tally(model_id, output.model_version, output.made_at, output.inference_id),
                                     output)  # fmt: skip
        elif unmatched(ReviewRecorded.model_validate_json(entry["body"]), clock, policy, now):
            del oversight_join[key]
            REVIEWS_UNMATCHED.labels(model_id).inc()


async def _judge_oversight(model_id: str, version: str, state: RollingState) -> None:
    policy = monitoring.for_model(model_id).oversight
    window = Tally()
    for day in state.window(policy.window_days):
        if stored := oversight_days.get(table_key(model_id, version, day.isoformat())):
            window += Tally.model_validate_json(stored)
    findings = assess(window, policy)
    for finding in findings:
        OVERSIGHT.labels(model_id, version, finding.kind).set(finding.value)
    for signal in transitions(state, model_id, version, window, findings, policy.window_days):
        await emit(signal)
        await emit(oversight_alert(signal))
        log.warning("worker.oversight", model_id=model_id, model_version=version, kind=signal.kind,
                    event_type=signal.event_type)  # fmt: skip
    for finding in findings:  # from the state, so that a restarted worker shows what stands
        OVERSIGHT_ACTIVE.labels(model_id, version, finding.kind).set(int(finding.kind in state.standing))
