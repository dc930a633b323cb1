"""The Faust app and what its parts share: the one agent that reads every input record once and
hands it to each concern (drift.py, outcomes.py, oversight.py beside this register themselves), the
clock ticks, and the helpers that emit, dead-letter, hand on to the second stage and write table
changes to the right partition. Incidents have their own agent (incidents.py); worker.py imports
them all.

Two stages (vigil.handover says why): the first reads the input topics, keyed by inference, and
joins; the second reads `handover.v1`, keyed by model, and counts and judges. One agent reads
both, so a worker's partitions of every topic come together (Faust assigns co-partitioned topics
partition by partition): the second stage's records of a model sit with its registry events."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, Generic, NamedTuple, TypeVar, cast

import faust
import faust.streams as faust_streams
import faust.transport.drivers.aiokafka as faust_aiokafka
import structlog
from faust.types import TP, Message, TableT
from pydantic import BaseModel

from streams.stores import SCHEMES
from vigil.due_queue import DueQueue
from vigil.events import (
    ALERT_TOPIC,
    CLOCK_TOPIC,
    DEADLETTER_TOPIC,
    HANDOVER_TOPIC,
    INPUT_TOPICS,
    SURVEILLANCE_TOPIC,
    Event,
)
from vigil.handover import Handover
from vigil.join import DueIndex, Position
from vigil.offsets import Reading
from vigil.policy import load_policy
from vigil.slices import slices
from vigil.validation import Rejected, dead_letter, decode, outgoing
from vigil_runtime.observability import CONSUMER_LAG, DEAD_LETTERS, EVENTS_IN, EVENTS_OUT, LATENCY, PROCESSING_ERRORS
from vigil_runtime.settings import get_settings

settings = get_settings()
log = structlog.get_logger("worker")
STARTED = datetime.now(UTC)  # streams silent since before this were not heard because the worker was down
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

monitoring = load_policy(settings.policy_file)
# Measured (BENCHMARKS.md, worker_throughput's bare Faust agent): with Faust's defaults (1 MiB
# fetches, 4,096 buffered records) its consumer sits idle between fetches and tops out near 3,300
# records/s here even with nothing to do; with these, near 7,700. Bigger producer batches carry
# each batch's changelog writes in a few requests.
CONSUMER_TUNING: dict[str, Any] = {
    "consumer_max_fetch_size": 16 * 1024 * 1024,
    "broker_max_poll_records": 5000,
    "stream_buffer_maxsize": 32768,
    "producer_max_batch_size": 1024 * 1024,
    "producer_linger": 0.005,
}


class ChangelogInBatches(faust.Table):
    """A table whose changes reach its changelog once per batch, the last value of each key only,
    sent straight to the producer. Faust's own path sends each change through a buffer one message
    at a time and holds the stream back while more than 100 wait: measured, the worker spent more
    time waiting on it than processing. Sent and delivered before the batch's records are
    acknowledged (`send_changelogs`)."""

    def on_key_set(self, key: Any, value: Any) -> None:
        _unsent[(self, self.partition_for_key(key), key)] = value
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        _unsent[(self, self.partition_for_key(key), key)] = None  # a tombstone
        self._sensor_on_del(self, key)

    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        # Seen with two workers started at once on new topics: a changelog topic the other one had
        # just created was not yet in this one's metadata, and Faust took its 0 partitions for a
        # mismatch, failing every batch until then. Unknown is not a mismatch: checked again on
        # the next change.
        if self.app.consumer.topic_partitions(self.changelog_topic_name):
            super()._verify_source_topic_partitions(source_topic)


_unsent: dict[tuple[ChangelogInBatches, int | None, Any], Any] = {}


async def send_changelogs(*tables: TableT) -> None:
    """Sends the table changes made since the last call (of these tables only, if named), then
    waits until they and every event sent meanwhile are delivered. Called before records are
    acknowledged: Faust's commit does not flush the producer, so without the wait a crash just after
    a commit could lose the changes and events of records whose offsets it had committed. A concern
    names tables to deliver some of its changes before others (drift.py says why)."""
    # By identity: a table is a Mapping, and `in` would compare the tables' contents.
    named = {id(table) for table in tables}
    changes = [(where, value) for where, value in _unsent.items() if not named or id(where[0]) in named]
    if named and not changes:
        return  # nothing of theirs to deliver before the rest
    # Taken out before the first await: agents run concurrently, and another agent's call would
    # otherwise send (and remove) the same changes while this one waits on the producer.
    for where, _ in changes:
        del _unsent[where]
    for where, value in changes:
        table, partition, key = where
        sent = await app.producer.send(table.changelog_topic.get_topic_name(), key, value, partition, None, None)
        cast(asyncio.Future, sent).add_done_callback(functools.partial(_persisted, table))  # what send returns
    await app.producer.flush()


def _persisted(table: ChangelogInBatches, sent: asyncio.Future) -> None:
    # What Faust's own callback does: a RocksDB store keeps the offset it holds data up to.
    if not sent.cancelled() and sent.exception() is None:
        table.data.set_persisted_offset(sent.result().topic_partition, sent.result().offset)


class InOrderConsumer(faust_aiokafka.Consumer):
    """Faust's consumer, committing no further than the worker has taken each partition in order
    (vigil.offsets says why)."""

    def _new_offset(self, tp: TP) -> int | None:
        return reading.committable(tp, super()._new_offset(tp))


class InOrderTransport(faust_aiokafka.Transport):
    Consumer = InOrderConsumer


class WorkerApp(faust.App):
    def _new_transport(self) -> InOrderTransport:
        return InOrderTransport(self.conf.broker_consumer, self)


app = WorkerApp(
    settings.worker_id,
    datadir=str(settings.home / "worker-data"),
    broker=f"kafka://{settings.kafka_bootstrap}",
    store=f"{SCHEMES[settings.worker_store]}://",
    web_enabled=False,
    topic_partitions=settings.topic_partitions,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    broker_session_timeout=settings.worker_session_timeout,
    table_standby_replicas=settings.worker_standby_replicas,
    Table=ChangelogInBatches,
    **CONSUMER_TUNING,
    value_serializer="raw",
    key_serializer="raw",
)

# The one agent's topics: every input, the ticks of wall-clock time the worker sends itself, and
# what its first stage hands to its second.
inputs = app.topic(
    *settings.topics((*INPUT_TOPICS, CLOCK_TOPIC, HANDOVER_TOPIC)), value_serializer="raw", key_serializer="raw"
)
handovers = app.topic(settings.topic(HANDOVER_TOPIC), value_serializer="raw", key_serializer="raw")
deadletters = app.topic(settings.topic(DEADLETTER_TOPIC), value_serializer="raw", key_serializer="raw")


@dataclass(slots=True)
class Item:
    """One record of a batch, decoded once: its event, or what the first stage handed on, or why
    it was refused (all None for a tick)."""

    record: faust.EventT
    topic: str  # logical
    event: Event | None
    refused: Rejected | None = None
    handover: Handover | None = None
    position: Position = field(init=False)  # asked for often: built once (it was 1 % of the worker's time)

    def __post_init__(self) -> None:
        self.position = Position(self.message.topic, self.message.partition, self.message.offset)

    @property
    def message(self) -> Message:
        return self.record.message

    @property
    def is_tick(self) -> bool:
        return self.topic == CLOCK_TOPIC


# Checks of a decoded event against what the worker knows besides the record (the registry):
# each answers why the event is refused, or None.
ADMISSION: list[Callable[[Event], Rejected | None]] = []


def admitted(record: faust.EventT) -> Item:
    """The record decoded, validated and PHI-checked, then checked by `ADMISSION`: the only place
    the worker does so."""
    message = record.message
    topic = settings.logical_topic(message.topic)
    if topic == CLOCK_TOPIC:
        return Item(record, topic, None)
    if topic == HANDOVER_TOPIC:  # written by the first stage, from records checked there
        try:
            return Item(record, topic, None, handover=Handover.model_validate_json(message.value or b""))
        except ValueError as error:  # another version's, or not the worker's
            why = f"not a handover of this worker's version: {type(error).__name__}"
            return Item(record, topic, None, Rejected(why, "worker_error"))
    try:
        event = decode(message.value, topic, sent_at(message), settings.max_clock_skew)
    except Rejected as rejected:
        return Item(record, topic, None, rejected)
    for check in ADMISSION:
        if refusal := check(event):
            return Item(record, topic, None, refusal)
    return Item(record, topic, event)


Take = Callable[[list[Item]], Awaitable[None]]


class Concern(NamedTuple):
    """A part of what the worker derives (drift, performance, oversight): the topics it needs, and
    what it does with a batch of their records."""

    name: str
    topics: frozenset[str]
    take: Take


CONCERNS: list[Concern] = []


def concern(name: str, *topics: str) -> Callable[[Take], Take]:
    """Registers a concern with the one agent (ticks reach every concern)."""

    def register(take: Take) -> Take:
        CONCERNS.append(Concern(name, frozenset((*topics, CLOCK_TOPIC)), take))
        return take

    return register


# What the worker holds decoded at once: a batch is taken in slices of about this many bytes of
# records, each decoded, taken by every concern and delivered before the next (vigil.slices).
# About a whole batch of input records (about 500 bytes each in the demo hospital's mix), or a few
# handovers. Measured (P4, BENCHMARKS.md): batches that caught up on handovers otherwise blocked
# the event loop for 10-17 s and took the RSS past 1 GiB.
SLICE_BYTES = 1024 * 1024


@app.agent(inputs)
async def process(stream: faust.StreamT) -> None:
    """The one pass over the input topics: each record is decoded once (a refused one becomes a
    dead letter with its reason), then every concern takes the slice's records it needs, in order.
    Batches of up to 2,000 records or half a second (what bounds the latency of an alert, P2 in
    BENCHMARKS.md), so that a concern writes each table key once per slice of a batch."""
    async for batch in stream.take_events(2000, within=0.5):  # type: ignore[attr-defined]  # not in its hints
        for records in slices(await _in_order(batch), lambda record: len(record.message.value or b""), SLICE_BYTES):
            await _take_slice([admitted(record) for record in records])


async def _take_slice(items: list[Item]) -> None:
    """Dead letters for the refused, every concern's part, then the deliveries in their order."""
    for item in items:
        if not item.is_tick:
            EVENTS_IN.labels("worker", item.topic).inc()
        if item.refused is not None:
            await send_dead_letter(item.refused, *item.position, item.message.value)
    for part in CONCERNS:
        if mine := [item for item in items if item.topic in part.topics]:
            await _take(part, mine)
    for stage in DELIVERED_FIRST.values():
        await send_changelogs(*stage)
    await send_handovers()
    await send_changelogs()
    done = time.time()
    for item in items:
        if not item.is_tick:
            LATENCY.labels("worker").observe(max(0.0, done - item.message.timestamp))


reading = Reading[TP]()
_handing_over: dict[str, Handover] = {}


def hand_over(model_id: str) -> Handover:
    """What this batch hands to the model's second stage: sent, and delivered with the batch's
    table changes, before its records are acknowledged."""
    if model_id not in _handing_over:
        _handing_over[model_id] = Handover(model_id=model_id)
    return _handing_over[model_id]


class Delivery(IntEnum):
    """First-stage tables whose changes of a slice reach Kafka before its handovers (outcomes.py and
    oversight.py say why), in this order, each delivered before the next is sent. A crash while a
    slice's changes are sent leaves any part of them delivered, so what must not be delivered
    without something else comes after it."""

    JOIN_ENTRIES = 0
    # After the join entries: a clock restored without the entries of the records that moved it
    # would judge those records, read again, as hours overdue (an output counted unreviewed while
    # its review, already read once, waits to be read again).
    CLOCKS = 1


DELIVERED_FIRST: dict[Delivery, list[TableT]] = {stage: [] for stage in Delivery}


async def send_handovers() -> None:
    """Sent after the tables `DELIVERED_FIRST` (delivered by then) and with the rest."""
    for model_id, handover in list(_handing_over.items()):
        del _handing_over[model_id]
        for piece in handover.pieces():  # in order, to one partition: the second stage takes them so
            await handovers.send(key=model_id.encode(), value=piece.model_dump_json().encode())
            EVENTS_OUT.labels("worker", HANDOVER_TOPIC).inc()


async def _in_order(batch: list[faust.EventT]) -> list[faust.EventT]:
    """The batch's records each partition hands over in order: none held twice (Faust has been
    seen to hold a record twice in one batch after a rebalance: counts guard against records read
    again in later batches, not within one), none after a gap (vigil.offsets; the partition is
    sought back to the missing record, and those after it come again)."""
    seen: set[tuple[TP, int]] = set()
    out = []
    for record in batch:
        message = record.message
        where = (message.tp, message.offset)
        if where not in seen and reading.admit(message.tp, message.offset):
            seen.add(where)
            out.append(record)
        elif where in seen:
            log.info("worker.repeated_in_batch", topic=settings.logical_topic(message.topic),
                     partition=message.partition, offset=message.offset)  # fmt: skip
    sought, given_up = reading.to_seek(time.monotonic())
    for tp, offset in sought.items():
        log.warning("worker.gap", topic=settings.logical_topic(tp.topic), partition=tp.partition, seek_to=offset)
        await app.consumer.seek(tp, offset)
    for tp in given_up:
        PROCESSING_ERRORS.labels("worker", "gap").inc()
        log.error("worker.gap_given_up", topic=settings.logical_topic(tp.topic), partition=tp.partition)
    return out


async def each(items: list[Item], name: str, handle: Callable[[Item], Awaitable[None]]) -> None:
    """A concern's records one by one, each one's table writes to its partition. An error on one
    becomes a dead letter naming the concern and the error, and the concern goes on with the next:
    one bad record must not stop a stream."""
    for item in items:
        try:
            writing_for(item.record)
            await handle(item)
        except Exception as error:
            await _failed(name, item, error)


async def each_record(stream: faust.StreamT, name: str, handle: Callable[[Item], Awaitable[None]]) -> None:
    """`each` for an agent of its own, record by record, each one's table changes sent before it
    is acknowledged."""
    async for record in stream.events():
        await each([admitted(record)], name, handle)
        await send_changelogs()


async def _take(part: Concern, items: list[Item]) -> None:
    """A concern's part of the batch. An error outside its records' own handling (in what it writes
    or judges for the whole batch) is logged once with the batch's positions, each valid record of
    the batch becomes a dead letter naming the concern and the error, and the worker goes on,
    instead of crashing and being restarted over and over by Faust."""
    try:
        await part.take(items)
    except Exception as error:
        PROCESSING_ERRORS.labels(part.name, "batch").inc()
        positions = sorted({(item.topic, item.message.partition) for item in items})
        log.exception("worker.batch_error", agent=part.name, records=len(items), partitions=positions,
                      first_offset=items[0].message.offset, last_offset=items[-1].message.offset)  # fmt: skip
        for item in items:
            await _dead_letter_failure(part.name, item, error)


async def _failed(name: str, item: Item, error: Exception) -> None:
    PROCESSING_ERRORS.labels(name, item.topic).inc()
    message = item.message
    log.exception(
        "worker.processing_error", agent=name, topic=item.topic, partition=message.partition, offset=message.offset
    )
    await _dead_letter_failure(name, item, error)


async def _dead_letter_failure(name: str, item: Item, error: Exception) -> None:
    """A valid input record a concern failed on: its own dead letter (refused ones have theirs, and
    ticks are not events)."""
    if item.event is not None:
        # The error's type, not its message: a message may quote the payload.
        why = Rejected(f"the worker's {name} agent failed on this record: {type(error).__name__}", "worker_error")
        with contextlib.suppress(Exception):  # a dead letter that cannot be sent must not stop the worker either
            await send_dead_letter(why, *item.position, item.message.value, name)


def steady_timer(interval: float) -> Callable[[Callable[[], Awaitable[None]]], Any]:
    """`app.timer`, except that a failing run is logged and counted and the next one comes: Faust
    crashes the whole worker when a timer raises."""

    def register(run: Callable[[], Awaitable[None]]) -> Any:
        @functools.wraps(run)
        async def steady() -> None:
            try:
                await run()
            except Exception:
                PROCESSING_ERRORS.labels(run.__name__, "timer").inc()
                log.exception("worker.timer_error", timer=run.__name__)

        return app.timer(interval=interval)(steady)

    return register


@steady_timer(interval=5.0)
async def report_lag() -> None:
    """Records of each partition not yet taken: its high-water mark less the next offset the worker
    takes there (or its fetch position, before it has taken any). Asking the consumer for every
    position crossed to its thread and back once per partition: in a loaded worker that took
    longer than the timer's interval."""
    consumer = app.consumer
    for tp in consumer.assignment():
        taking = reading.expected.get(tp)
        position = taking if taking is not None else await consumer.position(tp)
        # Either is unknown for a partition just assigned, until its first fetch (a crash here
        # once took a worker down in the middle of a rebalance).
        highwater = consumer.highwater(tp)
        if position is not None and highwater is not None:
            lag = max(0, highwater - position)
            CONSUMER_LAG.labels("worker", settings.logical_topic(tp.topic), str(tp.partition)).set(lag)


clock = app.topic(settings.topic(CLOCK_TOPIC), value_serializer="raw", key_serializer="raw")


# On every worker, not only the group's leader: after a worker is killed, the group may take a
# session timeout to elect a live leader, and time must not stop meanwhile. Extra ticks are harmless.
@steady_timer(interval=settings.clock_interval)
async def tick() -> None:
    await tick_everywhere()


async def tick_everywhere(**news: str) -> None:
    """A tick on every partition: agents that wait on wall-clock time get it where their state lives,
    and news that concerns state on every partition (a guideline change) reaches all of it."""
    value = json.dumps({"at": datetime.now(UTC).isoformat(), **news}).encode()
    for partition in range(settings.topic_partitions):
        await clock.send(value=value, partition=partition)


def news_of(tick: Item, name: str) -> str | None:
    return json.loads(tick.message.value or b"{}").get(name)


outputs = {
    name: app.topic(settings.topic(name), value_serializer="raw", key_serializer="raw")
    for name in (ALERT_TOPIC, SURVEILLANCE_TOPIC, "model.v1")
}


def sent_at(message: Message) -> datetime:
    """When the record was produced (Kafka's timestamp): what its event times are judged against."""
    return datetime.fromtimestamp(message.timestamp, UTC)


async def emit(event: Event) -> None:
    record = outgoing(event)
    await outputs[record.topic].send(key=record.key, value=record.value)
    EVENTS_OUT.labels("worker", record.topic).inc()


class Stored(Generic[M]):
    """A table of typed values: one codec (pydantic's JSON) for every value the worker keeps."""

    def __init__(self, name: str, kind: type[M], delivered_first: Delivery | None = None) -> None:
        """`delivered_first`: a first-stage table whose changes are delivered before the handovers, and when."""
        self.table = app.Table(name, default=None, key_type=bytes, value_type=bytes)
        self.kind = kind
        if delivered_first is not None:
            DELIVERED_FIRST[delivered_first].append(self.table)

    def get(self, key: bytes) -> M | None:
        raw = self.table.get(key)
        return None if raw is None else self.kind.model_validate_json(raw)

    def __setitem__(self, key: bytes, value: M) -> None:
        self.table[key] = value.model_dump_json().encode()

    def pop(self, key: bytes) -> None:
        self.table.pop(key, None)

    def read(self, key: bytes) -> M | None:
        """`get` for values read often and changed seldom, decoded once while unchanged: not to be modified."""
        return cached(self.table, key, self.kind.model_validate_json)

    def items(self) -> Iterator[tuple[bytes, M]]:
        for key, raw in list(self.table.items()):
            yield key, self.kind.model_validate_json(raw)


_indexes: list[DueIndex[bytes] | DueQueue] = []
# The queues of when join entries fall due (vigil.due_queue), every join's in one table.
due_queues = app.Table("due-queues", default=None, key_type=bytes, value_type=bytes)


def due_index() -> DueIndex[bytes]:
    """A concern's index of when its join entries fall due, refilled after a rebalance."""
    index = DueIndex[bytes]()
    _indexes.append(index)
    return index


def due_queue(name: str) -> DueQueue:
    """A join's queue of when its entries fall due, in the worker's tables; read again after a rebalance."""
    queue = DueQueue(name, due_queues)
    _indexes.append(queue)
    return queue


@app.on_partitions_revoked.connect  # type: ignore[arg-type]  # its hint omits the signal's arguments
async def _forget_revoked(sender: faust.App, revoked: set[TP], **_: Any) -> None:
    # What another worker may change while it owns them; refilled from the table on the first tick.
    for index in _indexes:
        index.forget({tp.partition for tp in revoked})
    reading.revoke(revoked)


@app.on_partitions_assigned.connect  # type: ignore[arg-type]  # its hint omits the signal's arguments
async def _continue_assigned(sender: faust.App, assigned: set[TP], **_: Any) -> None:
    reading.assign(assigned)


# Keys read in a rolling window move on with it (a model's days): the values decoded for days
# long gone would otherwise stay for the worker's life, one more per model and day.
DECODED_VALUES = 4096
_decoded_values: OrderedDict[tuple[str, bytes], tuple[bytes, Any]] = OrderedDict()


def cached(table: TableT, key: bytes, decode_value: Callable[[bytes], T]) -> T | None:
    """A table value decoded once, while the stored bytes stay the same object: for values read on
    every event or batch that seldom change (a registration, a reference, the days of a rolling
    window but its latest). The caller must not modify what it gets."""
    raw = table.get(key)
    if raw is None:
        return None
    where = (table.name, key)
    hit = _decoded_values.get(where)
    if hit is None or hit[0] != raw:  # the same object in memory (compared at once), equal bytes from RocksDB
        hit = (raw, decode_value(raw))
        _decoded_values[where] = hit
        if len(_decoded_values) > DECODED_VALUES:
            _decoded_values.popitem(last=False)  # the least recently read
    _decoded_values.move_to_end(where)
    return hit[1]


async def send_dead_letter(
    why: Rejected, topic: str, partition: int, offset: int, raw: bytes | None, agent: str | None = None
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
    record's partition: in the first stage, to its inference (or to a model on that partition); in
    the second, to the model whose partition it is."""
    faust_streams._current_event.set(weakref.ref(record))
