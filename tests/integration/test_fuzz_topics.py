"""Hostile records on every input topic: hypothesis-generated JSON values and byte-mutated valid
events. Each ends recorded as a valid event or dead-lettered with a reason; none is lost, and the
worker and the recorder stay up."""

from __future__ import annotations

import contextlib
import json
import random

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.store import reads
from services.store.event_store import EventStore
from tests.conftest import Pipeline
from tests.integration.helpers import hospital_events, wait_until
from tests.integration.test_reliability import pids
from vigil.events import INPUT_TOPICS, TOPIC_OF
from vigil.validation import Rejected, decode

pytestmark = pytest.mark.integration

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
# Objects that look like events more often than not, so the schema gate is reached, not only JSON's.
event_like = st.fixed_dictionaries(
    {"event_type": st.sampled_from(["InferenceMade", "OutcomeObserved", "ReviewRecorded", "ModelRegistered", "x"])},
    optional={"event_id": st.uuids().map(str), "occurred_at": st.text(max_size=30), "model_id": json_values,
              "features": json_values, "schema_version": st.integers(0, 3)},
)  # fmt: skip


def mutated(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        match rng.randrange(4):
            case 0:  # flip a byte
                data[rng.randrange(len(data))] = rng.randrange(256)
            case 1:  # cut
                del data[rng.randrange(len(data)) :]
            case 2:  # insert garbage
                at = rng.randrange(len(data) + 1)
                data[at:at] = rng.randbytes(rng.randint(1, 8))
            case 3:  # duplicate a run
                at = rng.randrange(len(data))
                data[at:at] = data[at : at + rng.randint(1, 40)]
        if not data:
            data = bytearray(b"{")
    return bytes(data)


@settings(max_examples=1, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(json_values, min_size=60, max_size=60), st.lists(event_like, min_size=60, max_size=60))
async def test_every_hostile_record_is_recorded_or_dead_lettered_with_a_reason(
    pipeline: Pipeline, db, generated: list, lookalikes: list
) -> None:
    s = pipeline.settings
    before = pids(pipeline)
    rng = random.Random(2026)
    valid = [(TOPIC_OF[e["event_type"]], json.dumps(e).encode()) for e in hospital_events(200, seed=1004)]
    hostile = [json.dumps(v).encode() for v in generated + lookalikes]
    hostile += [mutated(rng.choice(valid)[1], rng) for _ in range(240)]
    # Hostile records go round the input topics; valid ones to their own topic.
    records = [(INPUT_TOPICS[i % len(INPUT_TOPICS)], raw) for i, raw in enumerate(hostile)] + rng.sample(valid, 60)
    rng.shuffle(records)

    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
    await producer.start()
    sent: list[tuple[str, int, int]] = []
    try:
        for i, (topic, raw) in enumerate(records):
            meta = await producer.send_and_wait(s.topic(topic), raw, key=str(i).encode())
            sent.append((s.topic(topic), meta.partition, meta.offset))
    finally:
        await producer.stop()

    # What the shared gate makes of each: a valid event must be stored (once, wherever its copy came
    # first); anything else must be a dead letter at its own position.
    valid_ids: dict[tuple[str, int, int], str] = {}
    for (topic, partition, offset), (_, raw) in zip(sent, records, strict=True):
        with contextlib.suppress(Rejected):
            valid_ids[(topic, partition, offset)] = str(decode(raw, s.logical_topic(topic)).event_id)
    refused = [position for position in sent if position not in valid_ids]

    async def accounted() -> dict | None:
        stored = await EventStore(db).count_of(sorted(set(valid_ids.values())))
        async with db.connect() as conn:
            positions = set(sent)
            letters = {
                where: (d.reason_kind, d.reason)
                for d in await reads.dead_letters_of(conn)
                if (where := (d.source_topic, d.source_partition, d.source_offset)) in positions
            }
        complete = stored == len(set(valid_ids.values())) and all(p in letters for p in refused)
        return letters if complete else None

    letters = await wait_until(accounted, 120, "every hostile record recorded or dead-lettered")
    assert len(refused) > 300 and len(set(valid_ids.values())) >= 60  # the run did test both sides
    assert all(reason for _, reason in letters.values())
    assert "worker_error" not in {kind for kind, _ in letters.values()}, letters
    assert pids(pipeline) == before, "worker or recorder restarted\n" + pipeline.logs()
