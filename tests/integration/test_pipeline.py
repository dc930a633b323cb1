"""Events from the SDK reach the event store exactly once, through crashes and duplicates."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from vigil_sdk import AsyncEmitter

from services.store.event_store import EventStore
from tests.conftest import TOKENS, Pipeline
from tests.integration.helpers import count_events, emit_all, hospital_events, wait_recorded, wait_until

pytestmark = pytest.mark.integration


def emitters(pipeline: Pipeline, spool: Path) -> tuple[AsyncEmitter, AsyncEmitter]:
    s = pipeline.settings
    return (
        AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=spool / "kafka"),
        AsyncEmitter(api_url=pipeline.api_url, token=TOKENS["emitter"], spool_dir=spool / "http"),
    )


async def send_split(pipeline: Pipeline, items: list[dict], spool: Path) -> None:
    """Half straight to Kafka, half over HTTP, interleaved."""
    direct, over_http = emitters(pipeline, spool)
    async with direct, over_http:
        await asyncio.gather(emit_all(direct, items[0::2]), emit_all(over_http, items[1::2]))
    assert direct.pending == 0 and over_http.pending == 0


async def test_ten_thousand_events_half_kafka_half_http_are_recorded_exactly_once(
    pipeline: Pipeline, db, tmp_path: Path
) -> None:
    items = hospital_events(10_000, seed=101)
    ids = [e["event_id"] for e in items]
    await send_split(pipeline, items, tmp_path)
    await wait_recorded(db, ids, 180)
    await asyncio.sleep(3)  # nothing more may arrive
    assert await count_events(db, ids) == 10_000
    checked, problem = await EventStore(db).verify()
    assert problem is None and checked >= 10_000


async def test_sigkill_of_worker_and_recorder_mid_stream_loses_and_doubles_nothing(
    pipeline: Pipeline, db, tmp_path: Path
) -> None:
    items = hospital_events(10_000, seed=202)
    ids = [e["event_id"] for e in items]
    sending = asyncio.create_task(send_split(pipeline, items, tmp_path))

    # Crash both consumers several times while events are still arriving.
    rng = random.Random(5)
    for _ in range(3):
        await wait_until(lambda: recording_under_way(db, ids), 120, "recording under way")
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        pipeline.kill("worker", "recorder")
        await asyncio.sleep(0.5)
        pipeline.start("worker", "recorder")
    await sending

    # An SDK retry after a lost acknowledgement resends events already stored.
    direct, _ = emitters(pipeline, tmp_path / "again")
    async with direct:
        await emit_all(direct, items[:1000])

    await wait_recorded(db, ids, 240, "10,000 recorded events after crashes")
    await asyncio.sleep(3)
    assert await count_events(db, ids) == 10_000
    _, problem = await EventStore(db).verify()
    assert problem is None, str(problem)


async def recording_under_way(db, ids: list[str]) -> bool:
    return await count_events(db, ids) >= 500
