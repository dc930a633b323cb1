"""Small helpers for tests on the real stack."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy.ext.asyncio import AsyncEngine

from services.store import reads
from services.store.event_store import EventStore
from vigil_hospital import Hospital
from vigil_runtime.settings import Settings
from vigil_runtime.topics import partitions_of


def partition_of(key: str, partitions: int) -> int:
    """The partition of a record key, by the partitioner the producers use (inference ids are the
    record keys of inferences, outcomes and reviews)."""
    return int(DefaultPartitioner()(key.encode(), list(range(partitions)), []))


def ids_on_every_partition(partitions: int) -> list[str]:
    """One inference id for each partition."""
    found: dict[int, str] = {}
    while len(found) < partitions:
        key = str(uuid.uuid4())
        found.setdefault(partition_of(key, partitions), key)
    return [found[p] for p in range(partitions)]


def ids_on_partition(partition: int, partitions: int, n: int) -> list[str]:
    """n inference ids on one partition."""
    found: list[str] = []
    while len(found) < n:
        if partition_of(key := str(uuid.uuid4()), partitions) == partition:
            found.append(key)
    return found


def hospital_events(n: int, seed: int) -> list[dict[str, Any]]:
    """The first n events of a synthetic hospital (registry first)."""
    h = Hospital(seed=seed, start=datetime(2026, 3, 1, tzinfo=UTC))
    out: list[dict[str, Any]] = []
    for event in [*h.registry(), *h.stream(n)]:
        out.append(event)
        if len(out) == n:
            break
    return out


async def wait_until(check: Callable[[], Awaitable[Any]], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(0.5)


async def count_events(db: AsyncEngine, ids: list[str]) -> int:
    return await EventStore(db).count_of(ids)


async def wait_recorded(db: AsyncEngine, ids: list[str], seconds: float, what: str | None = None) -> None:
    """Until every one of these events is stored (never more: event_id is unique in the store)."""

    async def all_stored() -> bool:
        return await count_events(db, ids) == len(ids)

    await wait_until(all_stored, seconds, what or f"{len(ids):,} recorded events")


async def dead_letters_since(
    db: AsyncEngine, starts: dict[tuple[str, int], int], ends: dict[tuple[str, int], int] | None = None
) -> list[Any]:
    """Dead letters for records at or after the given (topic, partition) offsets (and before
    `ends`, if given: other tests write letters of made-up positions far ahead)."""
    async with db.connect() as conn:
        rows = await reads.dead_letters_of(conn)
    return [
        r
        for r in rows
        if (where := (r.source_topic, r.source_partition)) in starts
        and starts[where] <= r.source_offset < (ends or {}).get(where, 2**63)
    ]


async def emit_all(emitter: Any, items: list[dict[str, Any]]) -> None:
    for event in items:
        fields = dict(event)
        await emitter.emit(fields.pop("event_type"), **fields)


async def records_on(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """Every record on a (logical) topic so far, decoded, read outside any consumer group."""
    name = settings.topic(topic)
    partitions = [TopicPartition(name, p) for p in (await partitions_of(settings, [name]))[name]]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: list[dict[str, Any]] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(orjson.loads(r.value) for r in batch)
        return out
    finally:
        await consumer.stop()
