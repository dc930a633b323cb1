"""Two recorders share the partitions and one hash chain: one SIGKILLed mid-stream and restarted,
every event is stored once, the chain verifies, and each recorder's positions reach its partitions' ends;
a copy the other recorder stores while one looks for copies is skipped, not refused."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.processes import VIGIL, Background
from services.recorder.service import Recorder
from services.store.event_store import EventStore, Incoming
from tests.integration.helpers import count_events, emit_all, hospital_events, wait_recorded, wait_until
from vigil.events import RECORDED_TOPICS, TOPIC_OF
from vigil.validation import decode
from vigil_runtime.settings import Settings
from vigil_runtime.topics import delete_topics, ensure_topics, partitions_of

pytestmark = pytest.mark.integration


async def ends(settings: Settings) -> dict[tuple[str, int], int]:
    known = await partitions_of(settings, settings.topics(RECORDED_TOPICS))
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t, parts in known.items() for p in parts]
        return {(tp.topic, tp.partition): end for tp, end in (await consumer.end_offsets(tps)).items() if end}
    finally:
        await consumer.stop()


async def test_two_recorders_one_killed_store_every_event_once_on_one_chain(settings: Settings, db, tmp_path) -> None:
    from vigil_sdk import AsyncEmitter

    # Topics of their own, so that the session's recorder does not record these events too.
    mine = settings.model_copy(update={"topic_prefix": f"share{uuid.uuid4().hex[:6]}."})
    await ensure_topics(mine)
    env = {"VIGIL_TOPIC_PREFIX": mine.topic_prefix, "VIGIL_LOG_LEVEL": "warning"}
    recorders = [
        Background(f"recorder-{k}", [*VIGIL, "recorder"], tmp_path,
                   env | {"VIGIL_RECORDER_SHARE": f"{k}/2", "VIGIL_RECORDER_METRICS_PORT": str(19120 + k)})
        for k in (1, 2)
    ]  # fmt: skip
    items = hospital_events(3000, seed=2024)
    ids = [e["event_id"] for e in items]
    try:
        for recorder in recorders:
            recorder.start()
        async with AsyncEmitter(kafka=mine.kafka_bootstrap, topic_prefix=mine.topic_prefix,
                                spool_dir=tmp_path / "spool") as emitter:  # fmt: skip
            await emit_all(emitter, items[:1500])

            async def some_recorded() -> bool:
                return await count_events(db, ids[:1500]) >= 500

            await wait_until(some_recorded, 60, "500 events recorded")
            recorders[0].kill()
            await emit_all(emitter, items[1500:])
            await asyncio.sleep(1)
            recorders[0].start()
        await wait_recorded(db, ids, 120)

        store = EventStore(db)
        checked, problem = await store.verify()
        assert checked >= len(ids)
        assert problem is None, problem
        assert await store.count_of(ids) == len(ids)
        # Every partition with records is some recorder's, and its position is at the end.
        stored = await store.positions()
        expected = await ends(mine)
        assert {tp: stored.get(tp) for tp in expected} == expected
        assert {p % 2 for _, p in expected} == {0, 1}, "the hospital's models should land on both shares"
    finally:
        for recorder in recorders:
            recorder.stop()
        logs = "\n".join(r.logfile.read_text()[-2000:] for r in recorders if r.logfile.exists())
        await delete_topics(mine, (mine.topic_prefix,))
    assert "Traceback" not in logs, logs


async def test_a_copy_stored_by_the_other_recorder_meanwhile_is_skipped(settings: Settings, db, monkeypatch) -> None:
    """A recorder looks for copies before it takes the chain's lock. An event the other recorder
    stores in between breaks the unique event_id: the batch is then written event by event, and
    each event is stored once, none refused."""
    events = [decode(orjson.dumps(e)) for e in hospital_events(40, seed=77)[-2:]]
    ids = [str(e.event_id) for e in events]
    incoming = [Incoming(TOPIC_OF[e.event_type], 0, i, e) for i, e in enumerate(events)]
    store = EventStore(db)
    await store.append(incoming[:1], [], {})  # the other recorder's, after this one looked
    looking = EventStore._new_only

    async def looked_before_it_was_stored(self, conn, items, result):
        monkeypatch.setattr(EventStore, "_new_only", looking)  # the batch's look only
        return list(items)

    monkeypatch.setattr(EventStore, "_new_only", looked_before_it_was_stored)
    recorder = Recorder(settings)
    recorder.store = store
    result = await recorder._record(incoming, [], {})
    assert (sum(result.stored.values()), sum(result.duplicates.values()), result.dead_letters) == (1, 1, 0)
    assert await count_events(db, ids) == 2
    _, problem = await store.verify()
    assert problem is None, problem
