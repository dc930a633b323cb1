"""The Faust worker: topics and thin agents. Each agent decodes, calls the core, emits."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import faust
import structlog
from faust.types import Message

from services.observability import CONSUMER_LAG, DEAD_LETTERS, EVENTS_IN, EVENTS_OUT, LATENCY, PROCESSING_ERRORS
from services.settings import get_settings
from vigil.events import (
    ALERT_TOPIC,
    DEADLETTER_TOPIC,
    INCIDENT_EVENTS,
    INPUT_TOPICS,
    SURVEILLANCE_TOPIC,
    TOPIC_OF,
    Event,
    InferenceMade,
    OutcomeObserved,
    partition_key,
)
from vigil.incidents import Incident, clock_alert, clock_events, evolve
from vigil.oversight import missed_escalation, needs_escalation_watch
from vigil.validation import Rejected, canonical_json, dead_letter, decode

settings = get_settings()
log = structlog.get_logger("worker")

app = faust.App(
    settings.worker_id,
    broker=f"kafka://{settings.kafka_bootstrap}",
    store="memory://",
    web_enabled=False,
    topic_partitions=settings.topic_partitions,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    value_serializer="raw",
    key_serializer="raw",
)

inputs = app.topic(*settings.topics(INPUT_TOPICS), value_serializer="raw", key_serializer="raw")
deadletters = app.topic(settings.topic(DEADLETTER_TOPIC), value_serializer="raw", key_serializer="raw")


async def each_record(stream: faust.StreamT, agent: str, handle: Callable[[Message], Awaitable[None]]) -> None:
    """Runs `handle` on every record. An unexpected error is logged with the record's position and
    counted, and the agent goes on: one bad record must not stop a stream."""
    async for record in stream.events():
        message = record.message
        try:
            await handle(message)
        except Exception:
            topic = settings.logical_topic(message.topic)
            PROCESSING_ERRORS.labels(agent, topic).inc()
            log.exception(
                "worker.processing_error", agent=agent, topic=topic, partition=message.partition, offset=message.offset
            )


@app.agent(inputs)
async def validate(stream: faust.StreamT) -> None:
    """Every input record is either a valid event or a dead letter with its reason; never a crash."""
    await each_record(stream, "validate", _validate)


async def _validate(message: Message) -> None:
    topic = settings.logical_topic(message.topic)
    EVENTS_IN.labels("worker", topic).inc()
    try:
        decode(message.value, topic)
    except Rejected as rejected:
        letter = dead_letter(
            rejected, message.topic, message.partition, message.offset, message.value, datetime.now(UTC)
        )
        await deadletters.send(key=message.topic.encode(), value=letter.model_dump_json().encode())
        DEAD_LETTERS.labels(topic, rejected.kind).inc()
        EVENTS_OUT.labels("worker", DEADLETTER_TOPIC).inc()
        log.info(
            "worker.dead_lettered",
            topic=topic,
            partition=message.partition,
            offset=message.offset,
            reason_kind=rejected.kind,
            path=rejected.path,
        )
    LATENCY.labels("worker").observe(max(0.0, time.time() - message.timestamp))


@app.timer(interval=5.0)
async def report_lag() -> None:
    consumer = app.consumer
    for tp in consumer.assignment():
        position = await consumer.position(tp)
        if position is not None:
            lag = max(0, consumer.highwater(tp) - position)
            CONSUMER_LAG.labels("worker", settings.logical_topic(tp.topic), str(tp.partition)).set(lag)


# --- incidents: regulatory clocks ---------------------------------------------------------------
# Incident events are keyed by incident_id on both topics, so the table is co-partitioned.
incident_events = app.topic(
    *settings.topics(("incident.v1", SURVEILLANCE_TOPIC)), value_serializer="raw", key_serializer="raw"
)
incident_table = app.Table("incidents", default=None, key_type=bytes, value_type=bytes)
alerts = app.topic(settings.topic(ALERT_TOPIC), value_serializer="raw", key_serializer="raw")
surveillance = app.topic(settings.topic(SURVEILLANCE_TOPIC), value_serializer="raw", key_serializer="raw")


def _decoded(value: bytes, topic: str) -> Event | None:
    try:
        return decode(value, settings.logical_topic(topic))
    except Rejected:
        return None  # the validating agent dead-letters it


async def emit(event: Event) -> None:
    target = surveillance if TOPIC_OF[event.event_type] == SURVEILLANCE_TOPIC else alerts  # type: ignore[attr-defined]
    await target.send(key=partition_key(event), value=canonical_json(event).encode())
    EVENTS_OUT.labels("worker", TOPIC_OF[event.event_type]).inc()  # type: ignore[attr-defined]


@app.agent(incident_events)
async def track_incidents(stream: faust.StreamT) -> None:
    await each_record(stream, "track_incidents", _track_incident)


async def _track_incident(message: Message) -> None:
    event = _decoded(message.value, message.topic)
    if not isinstance(event, INCIDENT_EVENTS):
        return
    key = str(event.incident_id).encode()  # type: ignore[attr-defined]
    stored = incident_table.get(key)
    state = evolve(Incident.model_validate_json(stored) if stored else None, event)
    if state is not None:
        incident_table[key] = state.model_dump_json().encode()


@app.timer(interval=settings.clock_interval)
async def run_clocks() -> None:
    """Raise ReportDueSoon / ReportOverdue (and an alert) for every open clock that is due."""
    now = datetime.now(UTC)
    for key, value in list(incident_table.items()):
        try:
            state = Incident.model_validate_json(value)
            for event in clock_events(state, now):
                await emit(event)
                await emit(clock_alert(event, state.model_id))  # type: ignore[arg-type]
                log.info("worker.clock", incident_id=str(state.incident_id), event_type=event.event_type)
        except Exception:
            PROCESSING_ERRORS.labels("run_clocks", SURVEILLANCE_TOPIC).inc()
            log.exception("worker.clock_error", incident_id=key.decode())


# --- oversight: patient-facing bots must escalate emergencies -----------------------------------
# Inferences and outcomes are keyed by model_id on both topics, so the table is co-partitioned.
oversight_events = app.topic(
    *settings.topics(("inference.v1", "outcome.v1")), value_serializer="raw", key_serializer="raw"
)
escalation_watch = app.Table("escalation-watch", default=None, key_type=bytes, value_type=bytes)


@app.agent(oversight_events)
async def watch_escalations(stream: faust.StreamT) -> None:
    """Joins outcomes to unescalated patient-facing inferences, in either arrival order."""
    await each_record(stream, "watch_escalations", _watch_escalation)


async def _watch_escalation(message: Message) -> None:
    event = _decoded(message.value, message.topic)
    if isinstance(event, InferenceMade) and needs_escalation_watch(event):
        key = str(event.event_id).encode()
        pending = escalation_watch.get(key)
        if pending is not None:
            del escalation_watch[key]
            await _check_escalation(event, OutcomeObserved.model_validate_json(pending))
        else:
            escalation_watch[key] = canonical_json(event).encode()
    elif isinstance(event, OutcomeObserved) and event.emergency:
        key = str(event.inference_id).encode()
        pending = escalation_watch.get(key)
        if pending is not None:
            del escalation_watch[key]
            await _check_escalation(InferenceMade.model_validate_json(pending), event)
        else:
            escalation_watch[key] = canonical_json(event).encode()


async def _check_escalation(inference: InferenceMade, outcome: OutcomeObserved) -> None:
    if found := missed_escalation(inference, outcome):
        for event in found:
            await emit(event)
        log.warning("worker.escalation_missed", model_id=inference.model_id, event_id=str(inference.event_id))
