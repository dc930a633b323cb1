"""Migration 0004 on a store that holds events: the stored JSONB copy goes, each event's
`model_version` comes from its body, the chain still verifies, the store stays append-only, and
the down-migration gives the copy back. On a database of its own (`vigil_migrations`)."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest

from services.store.event_store import EventStore
from tests.integration.helpers import hospital_events
from vigil.chain import GENESIS, link
from vigil.validation import canonical_json, decode
from vigil_runtime.database import engine_for, migrate, migrate_down
from vigil_runtime.settings import Settings

pytestmark = pytest.mark.integration
# The columns a recorder wrote at 0003 (the JSONB copy was the database's).
BEFORE = (
    "seq",
    "event_id",
    "event_type",
    "schema_version",
    "model_id",
    "occurred_at",
    "topic",
    "source_partition",
    "source_offset",
    "body",
    "prev_hash",
    "hash",
)


async def test_0004_keeps_the_chain_and_fills_model_version_from_the_bodies(settings: Settings) -> None:
    mine = settings.model_copy(update={"database_url": settings.database_url.rsplit("/", 1)[0] + "/vigil_migrations"})
    url = mine.database_url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await asyncio.to_thread(migrate, mine, "0003")
        events = [decode(orjson.dumps(e)) for e in hospital_events(30, seed=5)]
        rows, prev = [], GENESIS
        for seq, event in enumerate(events, start=1):
            body = canonical_json(event)
            digest = link(prev, body)
            rows.append((seq, event.event_id, event.event_type, 1, getattr(event, "model_id", None),
                         event.occurred_at, "t", 0, seq, body, prev, digest))  # fmt: skip
            prev = digest
        await conn.copy_records_to_table("events", records=rows, columns=BEFORE)

        await asyncio.to_thread(migrate, mine)
        stored = dict(await conn.fetch("SELECT event_id::text, model_version FROM events"))
        assert stored == {str(e.event_id): getattr(e, "model_version", None) for e in events}
        assert any(stored.values()) and not all(stored.values())  # inferences have one, registrations not
        engine = engine_for(mine)
        checked, problem = await EventStore(engine).verify()
        await engine.dispose()
        assert (checked, problem) == (len(events), None)
        with pytest.raises(asyncpg.RaiseError):
            await conn.execute("UPDATE events SET model_version = 'x' WHERE seq = 1")

        await asyncio.to_thread(migrate_down, mine, "0003")
        copies = await conn.fetch("SELECT payload = body::jsonb FROM events")
        assert [same for (same,) in copies] == [True] * len(events)
    finally:
        await conn.close()
