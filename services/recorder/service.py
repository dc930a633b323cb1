"""Recorder: Kafka → event store.

It assigns itself its share of the partitions of the recorded topics and of the dead-letter topic
(all of them, unless several recorders share the work: `VIGIL_RECORDER_SHARE`), seeks to
the positions stored in PostgreSQL (tracking records), and appends each fetched batch in one
transaction together with the new positions. Kafka's own consumer-group offsets are not used:
the database is the only place that says how far the recorder got.

Nothing a record holds and no outage stops it. A record it cannot read is a dead letter; a batch
the database refuses is written record by record, and the record it refuses becomes a dead letter
with the database's reason. A lost PostgreSQL or Kafka is waited out (vigil_runtime/outages.py) with the
batch in flight held until it is written once; the process stays up and shows the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from services.processes import until_stopped
from services.store.event_store import AppendResult, EventStore, Incoming
from vigil.events import DEADLETTER_TOPIC, INPUT_TOPICS, RECORDED_TOPICS, DeadLetter
from vigil.validation import Rejected, dead_letter, decode
from vigil_runtime.database import engine_for
from vigil_runtime.observability import CONSUMER_LAG, DEAD_LETTERS, DUPLICATES, EVENTS_IN, EVENTS_OUT, LATENCY
from vigil_runtime.outages import is_outage, waiting_out
from vigil_runtime.settings import Settings
from vigil_runtime.topics import partitions_of

log = structlog.get_logger("recorder")
T = TypeVar("T")
W = TypeVar("W")


class Recorder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = EventStore(engine_for(settings))
        self.deadletter_topic = settings.topic(DEADLETTER_TOPIC)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=2 * 1024 * 1024,
        )
        self.stopping = asyncio.Event()

    async def _wait_out(self, dependency: str, call: Callable[[], Awaitable[T]]) -> T:
        return await waiting_out("recorder", dependency, call, give_up=self.stopping.is_set)

    async def _assign(self) -> list[TopicPartition]:
        topics = self.settings.topics((*RECORDED_TOPICS, DEADLETTER_TOPIC))
        known = await self._wait_out("kafka", lambda: partitions_of(self.settings, topics))
        mine, of = self.settings.recorder_partitions
        partitions = [TopicPartition(topic, p) for topic, numbers in known.items() for p in numbers if p % of == mine]
        self.consumer.assign(partitions)
        stored = await self._wait_out("postgres", self.store.positions)
        for tp in partitions:
            if (tp.topic, tp.partition) in stored:
                self.consumer.seek(tp, stored[(tp.topic, tp.partition)])
            else:
                await self.consumer.seek_to_beginning(tp)
        log.info("recorder.assigned", share=self.settings.recorder_share, partitions=len(partitions),
                 resumed=len(stored))  # fmt: skip
        return partitions

    async def _sort(self, records: list[ConsumerRecord]) -> tuple[list[Incoming], list[DeadLetter]]:
        incoming, letters = [], []
        read: Counter[str] = Counter()  # counted per batch: a metric's labels() per record is measurable
        for i, record in enumerate(records):
            if i % 50 == 49:
                await asyncio.sleep(0)  # let the append in flight talk to PostgreSQL meanwhile
            topic = self.settings.logical_topic(record.topic)
            read[topic] += 1
            if record.topic == self.deadletter_topic:
                try:
                    letters.append(DeadLetter.model_validate_json(record.value or b""))
                except (ValidationError, ValueError, RecursionError):
                    log.error(
                        "recorder.unreadable_dead_letter", topic=topic, partition=record.partition, offset=record.offset
                    )
                continue
            try:
                # Judged as the worker judges it (against the record's own timestamp), so the two agree.
                sent_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
                event = decode(record.value, topic, sent_at, self.settings.max_clock_skew)
            except Rejected as rejected:
                # The worker dead-letters input topics; Vigil's own derived topics are checked here,
                # so an event Vigil made but could not accept is never dropped silently.
                if topic not in INPUT_TOPICS:
                    now = datetime.now(UTC)
                    letters.append(
                        dead_letter(rejected, record.topic, record.partition, record.offset, record.value, now)
                    )
                    DEAD_LETTERS.labels(topic, rejected.kind).inc()
                    log.error(
                        "recorder.derived_event_refused", topic=topic, offset=record.offset, reason=rejected.reason
                    )
                continue
            incoming.append(Incoming(topic, record.partition, record.offset, event))
        for topic, n in read.items():
            EVENTS_IN.labels("recorder", topic).inc(n)
        return incoming, letters

    async def _record(
        self, incoming: list[Incoming], letters: list[DeadLetter], positions: dict[tuple[str, int], int]
    ) -> AppendResult:
        """One transaction for the batch, through any outage; if the database refuses the batch
        itself, record by record, so that only the record it refuses is set aside."""
        try:
            return await self._wait_out("postgres", lambda: self.store.append(incoming, letters, positions))
        except Exception as error:
            if is_outage(error):
                raise  # only when stopping: the batch is fetched again from the stored positions
            log.error("recorder.batch_refused", records=len(incoming), error=type(error).__name__)
        refused: list[DeadLetter] = []
        result = await self._alone(
            incoming, lambda item: self.store.append([item], [], {}), lambda i, e: refused.append(self._refused(i, e))
        )
        result.dead_letters = await self._record_letters([*letters, *refused], positions)
        return result

    async def _record_letters(self, letters: list[DeadLetter], positions: dict[tuple[str, int], int]) -> int:
        """The dead letters and the positions; a letter the database refuses too is logged and
        counted, never retried for ever (the gate refuses what could cause it, e.g. NUL characters)."""
        try:
            return (await self._wait_out("postgres", lambda: self.store.append([], letters, positions))).dead_letters
        except Exception as error:
            if is_outage(error):
                raise
        stored = await self._alone(letters, lambda letter: self.store.append([], [letter], {}), self._unstorable)
        await self._wait_out("postgres", lambda: self.store.append([], [], positions))
        return stored.dead_letters

    async def _alone(
        self,
        items: list[W],
        write: Callable[[W], Awaitable[AppendResult]],
        refused: Callable[[W, Exception], object],
    ) -> AppendResult:
        """Each item in a transaction of its own; one the database refuses goes to `refused`."""
        total = AppendResult()
        for item in items:
            try:
                total.add(await self._wait_out("postgres", functools.partial(write, item)))
            except Exception as error:
                if is_outage(error):
                    raise
                refused(item, error)
        return total

    def _unstorable(self, letter: DeadLetter, error: Exception) -> None:
        DEAD_LETTERS.labels(self.settings.logical_topic(letter.source_topic), "unstorable").inc()
        log.error("recorder.dead_letter_refused", topic=letter.source_topic, partition=letter.source_partition,
                  offset=letter.source_offset, error=type(error).__name__)  # fmt: skip

    def _refused(self, item: Incoming, error: Exception) -> DeadLetter:
        # The database's first line says why (e.g. a character it cannot store); it names no values.
        detail = str(getattr(error, "orig", None) or error).splitlines()[0][:200]
        why = Rejected(f"the event store refused this record: {type(error).__name__}: {detail}", "recorder_error")
        raw = item.body.encode()
        topic = self.settings.topic(item.topic)
        DEAD_LETTERS.labels(item.topic, why.kind).inc()
        log.error("recorder.record_refused", topic=item.topic, partition=item.partition, offset=item.offset,
                  error=type(error).__name__)  # fmt: skip
        return dead_letter(why, topic, item.partition, item.offset, raw, datetime.now(UTC), "recorder")

    async def run(self) -> None:
        await self._wait_out("kafka", self.consumer.start)
        try:
            partitions = await self._assign()
            lag_task = asyncio.create_task(self._report_lag(partitions))
            # Decoding is Python work, appending mostly waits on PostgreSQL: batch N is appended
            # while batch N+1 is decoded. Appends stay in order, one at a time, so the positions
            # each commits only move forward.
            appending: asyncio.Task[None] | None = None
            while not self.stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=500, max_records=3000)
                if not batches:
                    continue
                records = [r for batch in batches.values() for r in batch]
                incoming, letters = await self._sort(records)
                positions = {(tp.topic, tp.partition): batch[-1].offset + 1 for tp, batch in batches.items()}
                if appending is not None:
                    await appending
                appending = asyncio.create_task(self._append(records, incoming, letters, positions))
            if appending is not None:
                await appending
            lag_task.cancel()
        finally:
            await self.consumer.stop()
            await self.store.engine.dispose()

    async def _append(
        self,
        records: list[ConsumerRecord],
        incoming: list[Incoming],
        letters: list[DeadLetter],
        positions: dict[tuple[str, int], int],
    ) -> None:
        result = await self._record(incoming, letters, positions)
        now, latency = time.time(), LATENCY.labels("recorder")
        for r in records:
            latency.observe(max(0.0, now - r.timestamp / 1000))
        for topic, n in result.stored.items():
            EVENTS_OUT.labels("recorder", topic).inc(n)
        for topic, n in result.duplicates.items():
            DUPLICATES.labels(topic).inc(n)
        log.debug(
            "recorder.appended",
            stored=sum(result.stored.values()),
            duplicates=sum(result.duplicates.values()),
            dead_letters=result.dead_letters,
        )

    async def _report_lag(self, partitions: list[TopicPartition]) -> None:
        while True:
            with contextlib.suppress(Exception):
                ends = await self.consumer.end_offsets(partitions)
                for tp, end in ends.items():
                    lag = max(0, end - await self.consumer.position(tp))
                    CONSUMER_LAG.labels("recorder", self.settings.logical_topic(tp.topic), str(tp.partition)).set(lag)
            await asyncio.sleep(5)


async def run_recorder(settings: Settings) -> None:
    log.info("recorder.starting", bootstrap=settings.kafka_bootstrap)
    await until_stopped(Recorder(settings))
    log.info("recorder.stopped")
