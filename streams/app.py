"""The Faust app and what every agent shares: the topics, the validating agent, the clock ticks,
and the helpers that emit, dead-letter and write table changes to the right partition. The agents
live in incidents.py, outcomes.py, drift.py and oversight.py beside this; worker.py registers them."""

from __future__ import annotations

import contextlib
import json
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
import faust.streams as faust_streams
import structlog
from faust.types import Message

from services.observability import CONSUMER_LAG, DEAD_LETTERS, EVENTS_IN, EVENTS_OUT, LATENCY, PROCESSING_ERRORS
from services.settings import get_settings
from vigil.events import (
    ALERT_TOPIC,
    CLOCK_TOPIC,
    DEADLETTER_TOPIC,
    INPUT_TOPICS,
    SURVEILLANCE_TOPIC,
    TOPIC_OF,
    Event,
    partition_key,
)
from vigil.policy import load_policy
from vigil.validation import Rejected, canonical_json, dead_letter, decode

settings = get_settings()
log = structlog.get_logger("worker")
STARTED = datetime.now(UTC)  # streams silent since before this were not heard because the worker was down
T = TypeVar("T")

monitoring = load_policy(settings.policy_file)
app = faust.App(
    settings.worker_id,
    datadir=str(settings.home / "worker-data"),
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
    """Runs `handle` on every record. An unexpected error becomes a dead letter naming the agent and
    the error, and the agent goes on: one bad record must not stop a stream."""
    async for record in stream.events():
        message = record.message
        try:
            await handle(message)
        except Exception as error:
            await _failed(agent, message, error)


async def each_in_batch(
    records: list[faust.EventT], agent: str, handle: Callable[[faust.EventT, Event | None], Awaitable[None]]
) -> None:
    """`each_record` for a batch from `take_events`: the record's table writes go to its partition."""
    for record in records:
        message = record.message
        try:
            writing_for(record)
            await handle(record, decoded(message))
        except Exception as error:
            await _failed(agent, message, error)


async def each_batch(
    stream: faust.StreamT, agent: str, process: Callable[[list[faust.EventT]], Awaitable[None]]
) -> None:
    """Batches of up to 500 records, so that each table key is written once per batch. `process`
    handles the records one by one (`each_in_batch`), then writes and judges what they changed; an
    error there is logged once with the batch's positions, each record of the batch becomes a dead
    letter naming the agent and the error, and the agent goes on, as after a bad record, instead of
    crashing and being restarted over and over by Faust."""
    async for batch in stream.take_events(500, within=1.0):
        try:
            await process(batch)
        except Exception as error:
            PROCESSING_ERRORS.labels(agent, "batch").inc()
            positions = sorted({(settings.logical_topic(r.message.topic), r.message.partition) for r in batch})
            log.exception("worker.batch_error", agent=agent, records=len(batch), partitions=positions,
                          first_offset=batch[0].message.offset, last_offset=batch[-1].message.offset)  # fmt: skip
            for record in batch:
                await _dead_letter_failure(agent, record.message, error)


async def _failed(agent: str, message: Message, error: Exception) -> None:
    topic = settings.logical_topic(message.topic)
    PROCESSING_ERRORS.labels(agent, topic).inc()
    log.exception(
        "worker.processing_error", agent=agent, topic=topic, partition=message.partition, offset=message.offset
    )
    await _dead_letter_failure(agent, message, error)


async def _dead_letter_failure(agent: str, message: Message, error: Exception) -> None:
    """A valid input record an agent failed on: its own dead letter (refused ones have theirs, and
    ticks are not events)."""
    if settings.logical_topic(message.topic) in INPUT_TOPICS and not isinstance(verdict(message), Rejected):
        # The error's type, not its message: a message may quote the payload.
        why = Rejected(f"the worker's {agent} agent failed on this record: {type(error).__name__}", "worker_error")
        with contextlib.suppress(Exception):  # a dead letter that cannot be sent must not stop the agent either
            await send_dead_letter(why, message.topic, message.partition, message.offset, message.value, agent)


@app.agent(inputs)
async def validate(stream: faust.StreamT) -> None:
    """Every input record is either a valid event or a dead letter with its reason; never a crash."""
    await each_record(stream, "validate", _validate)


async def _validate(message: Message) -> None:
    topic = settings.logical_topic(message.topic)
    EVENTS_IN.labels("worker", topic).inc()
    if isinstance(rejected := verdict(message), Rejected):
        await send_dead_letter(rejected, message.topic, message.partition, message.offset, message.value)
    LATENCY.labels("worker").observe(max(0.0, time.time() - message.timestamp))


@app.timer(interval=5.0)
async def report_lag() -> None:
    consumer = app.consumer
    for tp in consumer.assignment():
        position = await consumer.position(tp)
        if position is not None:
            lag = max(0, consumer.highwater(tp) - position)
            CONSUMER_LAG.labels("worker", settings.logical_topic(tp.topic), str(tp.partition)).set(lag)


clock = app.topic(settings.topic(CLOCK_TOPIC), value_serializer="raw", key_serializer="raw")


# On every worker, not only the group's leader: after a worker is killed, the group may take a
# session timeout to elect a live leader, and time must not stop meanwhile. Extra ticks are harmless.
@app.timer(interval=settings.clock_interval)
async def tick() -> None:
    await tick_everywhere()


async def tick_everywhere(**news: str) -> None:
    """A tick on every partition: agents that wait on wall-clock time get it where their state lives,
    and news that concerns state on every partition (a guideline change) reaches all of it."""
    value = json.dumps({"at": datetime.now(UTC).isoformat(), **news}).encode()
    for partition in range(settings.topic_partitions):
        await clock.send(value=value, partition=partition)


def is_tick(record: faust.EventT) -> bool:
    return record.message.topic == clock.get_topic_name()


def news_of(tick: faust.EventT, name: str) -> str | None:
    return json.loads(tick.message.value).get(name)


outputs = {
    name: app.topic(settings.topic(name), value_serializer="raw", key_serializer="raw")
    for name in (ALERT_TOPIC, SURVEILLANCE_TOPIC, "model.v1")
}


def sent_at(message: Message) -> datetime:
    """When the record was produced (Kafka's timestamp): what its event times are judged against."""
    return datetime.fromtimestamp(message.timestamp, UTC)


# One decode per record. Faust hands every agent subscribed to a topic the same Message object, so
# the first agent to reach a record decodes it (JSON, schema, PHI guard, times) and the others read
# its verdict; it goes when the message does.
_verdicts: weakref.WeakKeyDictionary[Message, Event | Rejected] = weakref.WeakKeyDictionary()


def verdict(message: Message) -> Event | Rejected:
    """The record's event, or why it was refused: the same for every agent, decoded once."""
    found = _verdicts.get(message)
    if found is None:
        try:
            found = decode(message.value, settings.logical_topic(message.topic), sent_at(message),
                           settings.max_clock_skew)  # fmt: skip
        except Rejected as rejected:
            found = rejected
        _verdicts[message] = found
    return found


def decoded(message: Message) -> Event | None:
    found = verdict(message)
    return None if isinstance(found, Rejected) else found  # the validating agent dead-letters it


async def emit(event: Event) -> None:
    topic = TOPIC_OF[event.event_type]  # type: ignore[attr-defined]
    await outputs[topic].send(key=partition_key(event), value=canonical_json(event).encode())
    EVENTS_OUT.labels("worker", topic).inc()


_decoded_values: dict[tuple[str, bytes], tuple[bytes, Any]] = {}


def cached(table: faust.Table, key: bytes, decode_value: Callable[[bytes], T]) -> T | None:
    """A table value decoded once, while the stored bytes stay the same object: these are read for
    every event, and change only when a model registers or gets a new reference."""
    raw = table.get(key)
    if raw is None:
        return None
    hit = _decoded_values.get((table.name, key))
    if hit is None or hit[0] is not raw:
        hit = (raw, decode_value(raw))
        _decoded_values[(table.name, key)] = hit
    return hit[1]


async def send_dead_letter(
    why: Rejected, topic: str, partition: int, offset: int, raw: bytes, agent: str | None = None
) -> None:
    letter = dead_letter(why, topic, partition, offset, raw, datetime.now(UTC), agent)
    await deadletters.send(key=topic.encode(), value=letter.model_dump_json().encode())
    logical = settings.logical_topic(topic)
    DEAD_LETTERS.labels(logical, why.kind).inc()
    EVENTS_OUT.labels("worker", DEADLETTER_TOPIC).inc()
    log.info("worker.dead_lettered", topic=logical, partition=partition, offset=offset, reason_kind=why.kind,
             path=why.path)  # fmt: skip


def table_key(*parts: str) -> bytes:
    return "\x1f".join(parts).encode()


def model_of(key: bytes) -> str:
    return key.split(b"\x1f")[0].decode()


def writing_for(record: faust.EventT) -> None:
    """Faust writes a table change to the changelog partition of the event being processed, which
    `take_events` leaves unset (faust-streaming issue #497). Every key written here belongs to the
    record's model, and a model's records share one partition, so the record's is the right one."""
    faust_streams._current_event.set(weakref.ref(record))
