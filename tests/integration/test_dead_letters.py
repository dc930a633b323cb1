"""500 malformed or PHI-carrying records become 500 readable dead letters; valid events keep flowing."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.conftest import Pipeline
from tests.integration.helpers import dead_letters_since, hospital_events, wait_recorded, wait_until
from vigil_runtime.topics import partitions_of

pytestmark = pytest.mark.integration


def malformed(valid: dict, i: int) -> tuple[str, bytes | None]:
    """One bad record of ten kinds, as (logical topic, raw bytes)."""
    kind = i % 10
    bad = dict(valid, event_id=str(uuid.uuid4()))
    if kind == 0:
        return "inference.v1", b"{not json " + str(i).encode()
    if kind == 1:
        return "inference.v1", json.dumps(dict(bad, schema_version=2)).encode()
    if kind == 2:
        return "inference.v1", json.dumps(dict(bad, output={"label": "benign", "score": "high"})).encode()
    if kind == 3:
        return "inference.v1", json.dumps(dict(bad, features={"blob": "x" * 300_000})).encode()  # oversized
    if kind == 4:
        return "inference.v1", json.dumps(dict(bad, patient_ref=str(10_000_000 + i))).encode()  # MRN-like
    if kind == 5:
        return "inference.v1", json.dumps(dict(bad, features={"contact": f"p{i}@example.org"})).encode()
    if kind == 6:
        return "outcome.v1", json.dumps(bad).encode()  # right event, wrong topic
    if kind == 7:
        return "review.v1", json.dumps([bad]).encode()  # not an object
    if kind == 8:
        return "model.v1", json.dumps(dict(bad, event_type="ModelDeleted")).encode()
    return "inference.v1", json.dumps(dict(bad, occurred_at="yesterday")).encode()


async def end_offsets(settings, topics: list[str]) -> dict[tuple[str, int], int]:
    known = await partitions_of(settings, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    ends = await consumer.end_offsets([TopicPartition(t, p) for t, numbers in known.items() for p in numbers])
    await consumer.stop()
    return {(tp.topic, tp.partition): o for tp, o in ends.items()}


async def test_malformed_and_phi_records_become_dead_letters_with_reasons(pipeline: Pipeline, db) -> None:
    s = pipeline.settings
    topics = s.topics(("inference.v1", "outcome.v1", "review.v1", "model.v1"))
    starts = await end_offsets(s, topics)
    template = next(e for e in hospital_events(20, seed=303) if e["event_type"] == "InferenceMade")
    valid = [e for e in hospital_events(600, seed=304)]

    # 100 raw byte records straight from kcat, a client that is not Vigil's.
    garbage = b"\x1e".join(b"\x00\xffraw-bytes-" + str(i).encode() + b"\x80" for i in range(100))
    subprocess.run(
        ["kcat", "-P", "-b", s.kafka_bootstrap, "-t", s.topic("inference.v1"), "-D", "\x1e"],
        input=garbage,
        check=True,
    )
    # 400 more of ten kinds, interleaved with 600 valid events.
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, max_request_size=2_000_000)
    await producer.start()
    from vigil.events import TOPIC_OF

    for i in range(400):
        topic, raw = malformed(template, i)
        await producer.send(s.topic(topic), raw)
        if i < len(valid):
            event = valid[i]
            await producer.send(s.topic(TOPIC_OF[event["event_type"]]), json.dumps(event).encode())
    for event in valid[400:]:
        await producer.send(s.topic(TOPIC_OF[event["event_type"]]), json.dumps(event).encode())
    await producer.flush()
    await producer.stop()

    ends = await end_offsets(s, topics)
    letters = await wait_until(lambda: _enough(dead_letters_since(db, starts, ends), 500), 120, "500 dead letters")
    assert len(letters) == 500
    kinds = Counter(r.reason_kind for r in letters)
    assert kinds == {
        "not_json": 140,
        "unsupported_version": 40,
        "schema": 80,
        "oversized": 40,
        "phi": 80,
        "wrong_topic": 40,
        "not_an_object": 40,
        "unknown_type": 40,
    }
    for r in letters:
        assert r.reason and r.source_topic in topics
        if r.reason_kind == "phi":
            assert r.payload is None and "PHI guard" in r.reason
            assert "@example.org" not in r.reason and "1000" not in r.reason
        else:
            assert r.payload is not None
    by_kind = {r.reason_kind: r for r in letters}
    assert by_kind["schema"].path in ("output.score", "occurred_at")
    assert "ModelDeleted" in by_kind["unknown_type"].reason

    ids = [e["event_id"] for e in valid]
    await wait_recorded(db, ids, 60, "valid events recorded")


async def _enough(value, n: int):
    rows = await value
    return rows if len(rows) >= n else None
