"""Outcomes joined to their inferences in either order: the missed-escalation check and subgroup
performance with its safety-threshold and equity signals."""

from __future__ import annotations

import json
import time

import faust
from faust.types import Message

from services.observability import JOIN_EXPIRED, PERFORMANCE
from streams.app import (
    app,
    cached,
    each_batch,
    each_in_batch,
    emit,
    is_tick,
    log,
    model_of,
    monitoring,
    news_of,
    send_dead_letter,
    settings,
    table_key,
    tick_everywhere,
    writing_for,
)
from vigil.events import (
    CLOCK_TOPIC,
    EVENT_TYPES,
    Event,
    GuidelineChanged,
    InferenceMade,
    ModelRegistered,
    OutcomeObserved,
    ThresholdBreached,
)
from vigil.guidelines import guideline_alert
from vigil.oversight import missed_escalation
from vigil.performance import Counts, name_of
from vigil.performance_monitor import (
    Bucket,
    PerformanceState,
    add_pair,
    breach_candidate,
    join_key,
    meet,
    mismatched,
    pair_of,
    performance_alert,
    refused,
    waiting_form,
    window_table,
)
from vigil.performance_monitor import decode as decode_bucket
from vigil.performance_monitor import encode as encode_bucket
from vigil.performance_monitor import transitions as performance_transitions
from vigil.validation import Rejected, canonical_json

# Inferences, outcomes and registry events are keyed by model_id, so the tables are co-partitioned.
join_events = app.topic(
    *settings.topics(("inference.v1", "outcome.v1", "model.v1", CLOCK_TOPIC)),
    value_serializer="raw",
    key_serializer="raw",
)
registry = app.Table("models", default=None, key_type=bytes, value_type=bytes)  # model_id -> ModelRegistered
registered_on = app.Table(
    "model-partitions", default=None, key_type=bytes, value_type=bytes
)  # model_id -> its partition
waiting = app.Table("outcome-join", default=None, key_type=bytes, value_type=bytes)  # inference_id -> one side
performance_state = app.Table("performance-state", default=None, key_type=bytes, value_type=bytes)
performance_days = app.Table("performance-days", default=None, key_type=bytes, value_type=bytes)
_swept: dict[int, float] = {}  # partition -> when its waiting entries were last checked for expiry


@app.agent(join_events)
async def join_outcomes(stream: faust.StreamT) -> None:
    """Outcome joined to inference in either order; then the escalation check and the performance buckets."""
    await each_batch(stream, "join_outcomes", _join_batch)


class _Batch:
    def __init__(self) -> None:
        self.states: dict[tuple[str, str], PerformanceState] = {}
        self.buckets: dict[bytes, Bucket] = {}
        self.last_of: dict[str, faust.EventT] = {}


async def _join_batch(records: list[faust.EventT]) -> None:
    batch = _Batch()

    async def handle(record: faust.EventT, event: Event | None) -> None:
        message = record.message
        if isinstance(event, ModelRegistered):
            registry[event.model_id.encode()] = canonical_json(event).encode()
            registered_on[event.model_id.encode()] = str(message.partition).encode()
            batch.last_of[event.model_id] = record
            await _release_parked(event.model_id, message, batch)
        elif isinstance(event, InferenceMade | OutcomeObserved):
            batch.last_of[event.model_id] = record
            await _join(event, message, batch)
        elif isinstance(event, GuidelineChanged):  # keyed by its own id: tell every partition's models
            await tick_everywhere(guideline=canonical_json(event))
        elif is_tick(record):
            if guideline := news_of(record, "guideline"):
                await _tell_affected(GuidelineChanged.model_validate_json(guideline), message.partition)
            if time.monotonic() - _swept.get(message.partition, 0.0) > min(60.0, settings.registry_grace):
                await _sweep(message.partition)

    await each_in_batch(records, "join_outcomes", handle)
    for key, bucket in batch.buckets.items():
        writing_for(batch.last_of[model_of(key)])
        stored = decode_bucket(performance_days.get(key))
        for name, counts in bucket.items():
            stored[name] = stored.get(name, Counts()) + counts
        performance_days[key] = encode_bucket(stored)
    for (model_id, version), state in batch.states.items():
        writing_for(batch.last_of[model_id])
        await _judge_performance(model_id, version, state)
        performance_state[table_key(model_id, version)] = state.model_dump_json().encode()


def _registered(model_id: str) -> ModelRegistered | None:
    return cached(registry, model_id.encode(), ModelRegistered.model_validate_json)


async def _join(event: InferenceMade | OutcomeObserved, message: Message, batch: _Batch) -> None:
    key = join_key(event).encode()
    position = (message.topic, message.partition, message.offset)
    if isinstance(event, OutcomeObserved) and (model := _registered(event.model_id)) and (why := refused(event, model)):
        await send_dead_letter(why, *position, message.value)  # a label outside the set; unknown models wait
        return
    stored = json.loads(raw) if (raw := waiting.get(key)) else None
    other = EVENT_TYPES[stored["side"]].model_validate_json(stored["event"]) if stored else None
    pair = meet(other, event)  # type: ignore[arg-type]
    if pair is None:
        if stored is None:
            kept = waiting_form(event) if isinstance(event, InferenceMade) else event
            waiting[key] = _entry(
                event.event_type, event.model_id, message, event=canonical_json(kept), position=position
            )
        return
    del waiting[key]
    inference, outcome = pair
    where = position if isinstance(event, OutcomeObserved) else tuple(stored["position"])  # type: ignore[index]
    if why := mismatched(inference, outcome):  # its buckets would sit in another model's partition
        await send_dead_letter(why, *where, canonical_json(outcome).encode())
        return
    await _check_escalation(inference, outcome)
    await _count_pair(inference, outcome, where, message, batch)


def _entry(side: str, model_id: str, message: Message, **content: object) -> bytes:
    """A waiting entry. `partition` is the changelog partition it is written to (the current
    record's): the sweep deletes only entries of the partition it runs for."""
    head = {"side": side, "model_id": model_id, "at": time.time(), "partition": message.partition}
    return json.dumps(head | content).encode()


def _parked_key(model_id: str, inference_id: str) -> bytes:
    return table_key("parked", model_id, inference_id)


async def _count_pair(
    inference: InferenceMade, outcome: OutcomeObserved, where: tuple, message: Message, batch: _Batch
) -> None:
    """Adds a joined pair to its day's bucket. A pair of a model whose registration the worker has
    not seen yet (on a fresh start, topics are read in parallel) waits for it."""
    model = _registered(inference.model_id)
    if model is None:
        parked = {"inference": canonical_json(inference), "outcome": canonical_json(outcome), "position": where}
        waiting[_parked_key(inference.model_id, str(inference.event_id))] = _entry(
            "pair", inference.model_id, message, **parked
        )
        return
    if why := refused(outcome, model):
        await send_dead_letter(why, *where, canonical_json(outcome).encode())
        return
    policy = monitoring.for_model(model.model_id).performance
    version = inference.model_version
    if (model.model_id, version) not in batch.states:
        stored = performance_state.get(table_key(model.model_id, version))
        batch.states[(model.model_id, version)] = (
            PerformanceState.model_validate_json(stored) if stored else PerformanceState()
        )
    state = batch.states[(model.model_id, version)]
    attributes = state.capped(policy.max_values).apply(inference.subgroup, policy.attributes)
    day = inference.occurred_at.date()
    bucket = batch.buckets.setdefault(table_key(model.model_id, version, day.isoformat()), {})
    add_pair(bucket, pair_of(inference, outcome, attributes), model, policy.attributes, policy.depth)
    state.counted(inference.occurred_at, inference.event_id)


async def _tell_affected(guideline: GuidelineChanged, partition: int) -> None:
    """An alert for each model registered on this partition whose use case the guideline names."""
    for key, on in list(registered_on.items()):
        model = _registered(key.decode())
        if int(on) == partition and model is not None and (alert := guideline_alert(guideline, model)):
            await emit(alert)
            log.warning("worker.guideline", model_id=model.model_id, guideline_id=guideline.guideline_id)


async def _release_parked(model_id: str, message: Message, batch: _Batch) -> None:
    prefix = _parked_key(model_id, "")
    for key, value in list(waiting.items()):
        if key.startswith(prefix):
            del waiting[key]
            entry = json.loads(value)
            inference = InferenceMade.model_validate_json(entry["inference"])
            outcome = OutcomeObserved.model_validate_json(entry["outcome"])
            await _count_pair(inference, outcome, tuple(entry["position"]), message, batch)


async def _sweep(partition: int) -> None:
    """Forget entries older than the horizon (inferences never followed up, outcomes never matched),
    counted; dead-letter pairs whose model is still not registered after the grace period. Only
    this partition's entries: their changelog partition is the current record's."""
    _swept[partition] = time.monotonic()
    now = time.time()
    for key, value in list(waiting.items()):
        entry = json.loads(value)
        if entry["partition"] != partition:
            continue
        if entry["side"] == "pair" and now - entry["at"] > settings.registry_grace:
            del waiting[key]
            why = Rejected(
                f"outcome for model {entry['model_id']!r}, which no ModelRegistered event names "
                f"(waited {settings.registry_grace:g} s); not counted in performance",
                "unknown_model",
                "model_id",
            )
            await send_dead_letter(why, *entry["position"], entry["outcome"].encode())
        elif now - entry["at"] > monitoring.for_model(entry["model_id"]).performance.horizon_days * 86_400:
            del waiting[key]
            JOIN_EXPIRED.labels(entry["model_id"], entry["side"]).inc()


async def _check_escalation(inference: InferenceMade, outcome: OutcomeObserved) -> None:
    if found := missed_escalation(inference, outcome):
        for event in found:
            await emit(event)
        log.warning("worker.escalation_missed", model_id=inference.model_id, event_id=str(inference.event_id))


async def _judge_performance(model_id: str, version: str, state: PerformanceState) -> None:
    model = _registered(model_id)
    assert model is not None
    policy = monitoring.for_model(model_id).performance
    rules = policy.rules(model.risk_class)
    days = state.window(policy.window_days)
    table = window_table(decode_bucket(performance_days.get(table_key(model_id, version, d.isoformat()))) for d in days)
    for (label, subgroup), counts in table.items():
        if len(subgroup) <= 1 and (value := counts.value(rules.metric)) is not None:
            PERFORMANCE.labels(model_id, version, label, rules.metric, name_of(subgroup)).set(value)
    for signal in performance_transitions(state, model_id, version, table, rules, policy.window_days):
        await emit(signal)
        await emit(performance_alert(signal))
        if isinstance(signal, ThresholdBreached) and (candidate := breach_candidate(signal, model)):
            await emit(candidate)
        log.warning("worker.performance", model_id=model_id, model_version=version, event_type=signal.event_type)
