"""The append-only event store in PostgreSQL.

One `append` is one transaction: new events (linked into the hash chain), dead letters and the
consumer's Kafka positions commit together or not at all. A crash anywhere leaves the store and
the positions consistent, so a restarted recorder neither loses nor doubles an event.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.store import reads
from services.store.projections import project_incidents
from services.store.tables import consumer_positions, dead_letters, events
from vigil.chain import GENESIS, ChainBreak, ChainRow, ChainWalk, link
from vigil.events import DeadLetter, Event
from vigil.validation import canonical_json

# pg_advisory_xact_lock key serialising writers of the chain ("vigil" in ASCII).
CHAIN_LOCK = 0x766967696C
# The columns a recorder writes (recorded_at is the database's).
COPIED = ("seq", "event_id", "event_type", "schema_version", "model_id", "model_version", "occurred_at", "topic",
          "source_partition", "source_offset", "body", "prev_hash", "hash")  # fmt: skip


async def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under SQLAlchemy's, in the same transaction: for COPY and arrays."""
    return (await conn.get_raw_connection()).driver_connection


@dataclass(frozen=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    event: Event
    # Serialised before the append, outside the chain lock that every recorder waits for.
    body: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", canonical_json(self.event))


@dataclass
class AppendResult:
    stored: dict[str, int] = field(default_factory=dict)  # by topic
    duplicates: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0

    def add(self, other: AppendResult) -> None:
        for mine, theirs in ((self.stored, other.stored), (self.duplicates, other.duplicates)):
            for topic, n in theirs.items():
                mine[topic] = mine.get(topic, 0) + n
        self.dead_letters += other.dead_letters


class EventStore:
    def __init__(self, engine: AsyncEngine, consumer: str = "recorder") -> None:
        self.engine = engine
        self.consumer = consumer

    async def positions(self) -> dict[tuple[str, int], int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    consumer_positions.c.topic, consumer_positions.c.partition, consumer_positions.c.next_offset
                ).where(consumer_positions.c.consumer == self.consumer)
            )
            return {(t, p): o for t, p, o in rows}

    async def append(
        self,
        incoming: list[Incoming],
        letters: list[DeadLetter],
        positions: dict[tuple[str, int], int],
    ) -> AppendResult:
        result = AppendResult()
        async with self.engine.begin() as conn:
            # Copies are looked for before the chain's lock, which every recorder waits for. An
            # event another recorder stores in between (a copy on another partition: rare) breaks
            # the unique event_id, and the recorder writes that batch event by event.
            fresh = await self._new_only(conn, incoming, result)
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
            if fresh:
                stored = await self._link_and_insert(conn, fresh)
                await project_incidents(conn, stored)
            if letters:
                await conn.execute(
                    insert(dead_letters).on_conflict_do_nothing(),
                    [_dead_letter_row(d) for d in letters],
                )
                result.dead_letters = len(letters)
            if positions:
                stmt = insert(consumer_positions)
                await conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["consumer", "topic", "partition"],
                        set_={"next_offset": stmt.excluded.next_offset},
                    ),
                    [
                        {"consumer": self.consumer, "topic": t, "partition": p, "next_offset": o}
                        for (t, p), o in positions.items()
                    ],
                )
        return result

    async def _new_only(self, conn: AsyncConnection, incoming: list[Incoming], result: AppendResult) -> list[Incoming]:
        stored: set[str] = set()
        if incoming:
            rows = await (await _driver(conn)).fetch(
                "SELECT event_id::text FROM events WHERE event_id = ANY($1::uuid[])",
                [str(i.event.event_id) for i in incoming],
            )
            stored = {r[0] for r in rows}
        fresh: list[Incoming] = []
        for item in incoming:
            event_id = str(item.event.event_id)
            if event_id in stored:
                result.duplicates[item.topic] = result.duplicates.get(item.topic, 0) + 1
                continue
            stored.add(event_id)
            fresh.append(item)
            result.stored[item.topic] = result.stored.get(item.topic, 0) + 1
        return fresh

    async def _link_and_insert(self, conn: AsyncConnection, fresh: list[Incoming]) -> list[tuple[int, Event]]:
        """Links the events into the chain after its head and COPYs them in: measured, the chain's
        lock is held a fraction as long as with an INSERT of the same rows through SQLAlchemy."""
        driver = await _driver(conn)
        head = await driver.fetchrow("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        seq, prev = (head["seq"], head["hash"]) if head else (0, GENESIS)
        rows = []
        for item in fresh:
            seq += 1
            digest = link(prev, item.body)
            event = item.event
            rows.append((seq, event.event_id, event.event_type, event.schema_version, getattr(event, "model_id", None),
                         getattr(event, "model_version", None), event.occurred_at, item.topic, item.partition,
                         item.offset, item.body, prev, digest))  # fmt: skip
            prev = digest
        await driver.copy_records_to_table("events", records=rows, columns=COPIED)
        return [(row[0], item.event) for row, item in zip(rows, fresh, strict=True)]

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(events))).scalar_one()

    async def count_of(self, event_ids: list[str]) -> int:
        """How many of these events are stored."""
        async with self.engine.connect() as conn:
            return await reads.recorded_count(conn, event_ids)

    async def chain(self, batch: int = 5000) -> AsyncIterator[ChainRow]:
        """Every row in sequence order, streamed in batches."""
        after = 0
        async with self.engine.connect() as conn:
            while True:
                rows = (
                    await conn.execute(
                        select(events.c.seq, events.c.event_id, events.c.body, events.c.prev_hash, events.c.hash)
                        .where(events.c.seq > after)
                        .order_by(events.c.seq)
                        .limit(batch)
                    )
                ).all()
                if not rows:
                    return
                for row in rows:
                    yield ChainRow(row.seq, row.event_id, row.body, row.prev_hash, row.hash)
                after = rows[-1].seq

    async def verify(self, on_row: Callable[[int], None] | None = None) -> tuple[int, ChainBreak | None]:
        """Walk the whole chain; returns (rows checked, first break or None)."""
        walk, checked = ChainWalk(), 0
        async for row in self.chain():
            checked += 1
            if on_row:
                on_row(checked)
            if problem := walk.check(row):
                return checked, problem
        return checked, None

    async def head_seq(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(func.coalesce(func.max(events.c.seq), 0)))).scalar_one()


def _dead_letter_row(d: DeadLetter) -> dict:
    return {
        "dead_letter_id": str(d.dead_letter_id),
        "reason": d.reason,
        "reason_kind": d.reason_kind,
        "path": d.path,
        "source_topic": d.source_topic,
        "source_partition": d.source_partition,
        "source_offset": d.source_offset,
        "payload_sha256": d.payload_sha256,
        "payload": base64.b64decode(d.payload_base64) if d.payload_base64 is not None else None,
        "dead_lettered_at": d.dead_lettered_at,
    }
