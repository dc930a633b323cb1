"""Recorder: Kafka → event store.

It assigns itself every partition of the recorded topics and of the dead-letter topic, seeks to
the positions stored in PostgreSQL (tracking records), and appends each fetched batch in one
transaction together with the new positions. Kafka's own consumer-group offsets are not used:
the database is the only place that says how far the recorder got.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from services.database import engine_for
from services.observability import CONSUMER_LAG, DEAD_LETTERS, DUPLICATES, EVENTS_IN, EVENTS_OUT, LATENCY
from services.recorder.store import EventStore, Incoming
from services.settings import Settings
from services.topics import partitions_of
from vigil.events import DEADLETTER_TOPIC, INPUT_TOPICS, RECORDED_TOPICS, DeadLetter
from vigil.validation import Rejected, dead_letter, decode

log = structlog.get_logger("recorder")


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

    async def _assign(self) -> list[TopicPartition]:
        known = await partitions_of(self.settings, self.settings.topics((*RECORDED_TOPICS, DEADLETTER_TOPIC)))
        partitions = [TopicPartition(topic, p) for topic, numbers in known.items() for p in numbers]
        self.consumer.assign(partitions)
        stored = await self.store.positions()
        for tp in partitions:
            if (tp.topic, tp.partition) in stored:
                self.consumer.seek(tp, stored[(tp.topic, tp.partition)])
            else:
                await self.consumer.seek_to_beginning(tp)
        log.info("recorder.assigned", partitions=len(partitions), resumed=len(stored))
        return partitions

    def _sort(self, records: list[ConsumerRecord]) -> tuple[list[Incoming], list[DeadLetter]]:
        incoming, letters = [], []
        for record in records:
            topic = self.settings.logical_topic(record.topic)
            EVENTS_IN.labels("recorder", topic).inc()
            if record.topic == self.deadletter_topic:
                try:
                    letters.append(DeadLetter.model_validate_json(record.value))
                except ValidationError:
                    log.error(
                        "recorder.unreadable_dead_letter", topic=topic, partition=record.partition, offset=record.offset
                    )
                continue
            try:
                event = decode(record.value, topic)
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
        return incoming, letters

    async def run(self) -> None:
        await self.consumer.start()
        try:
            partitions = await self._assign()
            lag_task = asyncio.create_task(self._report_lag(partitions))
            while not self.stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=500, max_records=1000)
                if not batches:
                    continue
                records = [r for batch in batches.values() for r in batch]
                incoming, letters = self._sort(records)
                positions = {(tp.topic, tp.partition): batch[-1].offset + 1 for tp, batch in batches.items()}
                result = await self.store.append(incoming, letters, positions)
                now = time.time()
                for r in records:
                    LATENCY.labels("recorder").observe(max(0.0, now - r.timestamp / 1000))
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
            lag_task.cancel()
        finally:
            await self.consumer.stop()
            await self.store.engine.dispose()

    async def _report_lag(self, partitions: list[TopicPartition]) -> None:
        while True:
            with contextlib.suppress(Exception):
                ends = await self.consumer.end_offsets(partitions)
                for tp, end in ends.items():
                    lag = max(0, end - await self.consumer.position(tp))
                    CONSUMER_LAG.labels("recorder", self.settings.logical_topic(tp.topic), str(tp.partition)).set(lag)
            await asyncio.sleep(5)


async def run_recorder(settings: Settings) -> None:
    recorder = Recorder(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, recorder.stopping.set)
    log.info("recorder.starting", bootstrap=settings.kafka_bootstrap)
    await recorder.run()
    log.info("recorder.stopped")
