"""OTLP reader: GenAI spans from the Kafka topic an OpenTelemetry Collector's `kafka` exporter
writes, in as InferenceMade events through the same gate as `POST /v1/traces` (services/otlp.py).

At least once: the consumer group's offsets are committed only after Kafka took the batch's events
and dead letters. A span read twice (after a crash) is the same event, its id derived from its trace
and span ids, and the same dead letter; the recorder keeps one of each.

Nothing a record holds stops it: a record that is not OTLP is a dead letter with the reason and
its position; a span that cannot become a valid event is one too, naming the span and the record.
A lost Kafka is waited out and shown (vigil_runtime/outages.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord

from services import otlp
from services.processes import until_stopped
from services.publish import publish
from vigil.events import DeadLetter, InferenceMade
from vigil.validation import Rejected, dead_letter
from vigil_runtime.observability import DEAD_LETTERS, EVENTS_IN
from vigil_runtime.outages import waiting_out
from vigil_runtime.settings import Settings

log = structlog.get_logger("otlp-reader")
COMPONENT = "otlp-reader"
T = TypeVar("T")


def converted(record: ConsumerRecord, now: datetime) -> tuple[list[InferenceMade], list[DeadLetter]]:
    """One record's GenAI spans as events, and a dead letter for each span refused (or for the
    record, if it is no OTLP at all)."""
    where = (record.topic, record.partition)
    try:
        request = otlp.from_record(record.value)
    except otlp.BadRequest as error:
        why = Rejected(f"not OTLP traces (ExportTraceServiceRequest): {error}", "schema")
        return [], [dead_letter(why, *where, record.offset, record.value, now)]
    # Judged against when the Collector wrote the record, as the worker judges its input records.
    events, refused = otlp.inferences(request, datetime.fromtimestamp(record.timestamp / 1000, UTC))
    # The span id as its position (as for /v1/traces): each refused span has a dead letter of its
    # own, and the reason says which record held it.
    letters = []
    for r in refused:
        why = Rejected(f"{r.reason} (span {r.span}, record at offset {record.offset})", r.reason.kind, r.reason.path)
        letters.append(dead_letter(why, *where, r.position, r.raw, now))
    return events, letters


class OtlpReader:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = AIOKafkaConsumer(
            settings.otlp_topic,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{settings.worker_id}-otlp-reader",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        self.stopping = asyncio.Event()

    async def _through_outage(self, call: Callable[[], Awaitable[T]]) -> T:
        return await waiting_out(COMPONENT, "kafka", call, give_up=self.stopping.is_set)

    async def _commit(self) -> None:
        try:
            await self._through_outage(self.consumer.commit)
        except CommitFailedError:  # the partitions moved to another reader, which reads them again
            log.warning("otlp_reader.commit_refused_after_rebalance")

    async def _take(self, records: list[ConsumerRecord]) -> None:
        events: list[InferenceMade] = []
        letters: list[DeadLetter] = []
        now = datetime.now(UTC)
        for record in records:
            taken, refused = converted(record, now)
            events += taken
            letters += refused
        await self._through_outage(lambda: publish(self.producer, self.settings, events, letters, COMPONENT))
        for letter in letters:
            DEAD_LETTERS.labels("otlp", letter.reason_kind).inc()
            log.info("otlp_reader.refused", reason_kind=letter.reason_kind, path=letter.path,
                     partition=letter.source_partition)  # fmt: skip

    async def run(self) -> None:
        await self._through_outage(self.producer.start)
        await self._through_outage(self.consumer.start)
        log.info("otlp_reader.started", topic=self.settings.otlp_topic)
        try:
            while not self.stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=500, max_records=100)
                if not batches:
                    continue
                records = [record for records in batches.values() for record in records]
                EVENTS_IN.labels(COMPONENT, "otlp").inc(len(records))
                await self._take(records)
                await self._commit()
        finally:
            await self.consumer.stop()
            await self.producer.stop()


async def run_otlp_reader(settings: Settings) -> None:
    await until_stopped(OtlpReader(settings))
    log.info("otlp_reader.stopped")
