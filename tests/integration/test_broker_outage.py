"""The broker goes away while a model service emits: the SDK spools, then delivers each event once."""

from __future__ import annotations

from pathlib import Path

import pytest
from vigil_sdk import AsyncEmitter

from tests.conftest import Pipeline, stack
from tests.integration.helpers import count_events, emit_all, hospital_events, wait_recorded, wait_until

pytestmark = pytest.mark.integration


async def test_sdk_buffers_while_the_broker_is_down_and_delivers_once_after(
    pipeline: Pipeline, db, tmp_path: Path
) -> None:
    s = pipeline.settings
    items = hospital_events(3000, seed=404)
    ids = [e["event_id"] for e in items]
    emitter = AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path, timeout=3)
    try:
        await emit_all(emitter, items[:1000])
        assert await emitter.flush()

        stack("down", "kafka")
        await emit_all(emitter, items[1000:2000])
        assert not await emitter.flush()
        assert emitter.pending == 1000, "the events sent during the outage wait in the spool"
        assert (tmp_path / "pending.jsonl").exists()

        stack("up", "kafka")
        await emit_all(emitter, items[2000:])
        await wait_until(emitter.flush, 120, "the spool to drain")
        assert emitter.pending == 0
    finally:
        await emitter.close()

    await wait_recorded(db, ids, 180, "3,000 events after the outage")
    assert await count_events(db, ids) == 3000
