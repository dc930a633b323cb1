"""Nothing stops Vigil: a record nested 100,000 levels deep on every input topic, PostgreSQL stopped
for 30 s mid-stream, and an event dated ten years ahead. Each on the real broker and database."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.recorder.service import Recorder
from services.store import reads
from services.store.event_store import EventStore, Incoming
from tests.conftest import TOKENS, Pipeline
from tests.integration.helpers import dead_letters_since, hospital_events, wait_recorded, wait_until
from tests.integration.test_dead_letters import end_offsets
from vigil.events import INPUT_TOPICS, TOPIC_OF, InferenceMade
from vigil.validation import parse

pytestmark = pytest.mark.integration


def pids(pipeline: Pipeline) -> dict[str, int | None]:
    return {name: pipeline.processes[name].pid() for name in ("worker", "recorder")}


async def produce(settings, records: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for topic, raw in records:
            await producer.send_and_wait(settings.topic(topic), raw, key=b"reliability")
    finally:
        await producer.stop()


async def test_a_record_nested_100000_levels_deep_is_a_dead_letter_on_every_topic(
    pipeline: Pipeline, db, tmp_path
) -> None:
    s = pipeline.settings
    before = pids(pipeline)
    starts = await end_offsets(s, s.topics(INPUT_TOPICS))
    valid = [e for e in hospital_events(40, seed=1001) if e["event_type"] == "InferenceMade"]
    await produce(s, [("inference.v1", json.dumps(e).encode()) for e in valid[:5]])
    poison = tmp_path / "nested.json"
    poison.write_bytes(b"[" * 100_000 + b"]" * 100_000)  # 200 KB: under the size limit, far over the depth
    for topic in INPUT_TOPICS:
        subprocess.run(["kcat", "-P", "-b", s.kafka_bootstrap, "-t", s.topic(topic), str(poison)], check=True)
    await produce(s, [("inference.v1", json.dumps(e).encode()) for e in valid[5:]])

    await wait_recorded(db, [e["event_id"] for e in valid], 180, "the valid events around the poison")

    async def letters() -> list:
        found = [r for r in await dead_letters_since(db, starts) if r.reason_kind == "too_deep"]
        return found if len(found) == len(INPUT_TOPICS) else []

    found = await wait_until(letters, 180, "a too_deep dead letter on each input topic")
    assert {s.logical_topic(r.source_topic) for r in found} == set(INPUT_TOPICS)
    assert all("nested deeper than 32 levels" in r.reason for r in found)
    assert pids(pipeline) == before, "worker or recorder restarted\n" + pipeline.logs()


def pg_cluster() -> tuple[str, str]:
    line = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout
    version, name = next(row.split()[:2] for row in line.splitlines() if row.split()[2] == "5432")
    return version, name


async def test_postgres_stopped_for_30_s_mid_stream_loses_and_doubles_nothing(pipeline: Pipeline, db) -> None:
    s = pipeline.settings
    before = pids(pipeline)
    events = hospital_events(3000, seed=1002)
    ids = [e["event_id"] for e in events]
    headers = {"Authorization": f"Bearer {TOKENS['safety_officer']}"}
    version, name = pg_cluster()
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    answers: list[int] = []
    try:
        for e in events[:1000]:
            await producer.send(
                s.topic(TOPIC_OF[e["event_type"]]), json.dumps(e).encode(), key=e.get("model_id", "x").encode()
            )
        await producer.flush()
        subprocess.run(["pg_ctlcluster", version, name, "stop", "-m", "fast"], check=True)
        stopped = time.monotonic()
        try:
            for i, e in enumerate(events[1000:]):
                await producer.send(
                    s.topic(TOPIC_OF[e["event_type"]]), json.dumps(e).encode(), key=e.get("model_id", "x").encode()
                )
                if i % 400 == 0:
                    answers.append(
                        httpx.get(f"{pipeline.api_url}/v1/incidents", headers=headers, timeout=30).status_code
                    )
            await producer.flush()
            during = httpx.get(f"{pipeline.api_url}/v1/incidents", headers=headers, timeout=30)
            while time.monotonic() - stopped < 30:
                time.sleep(1)
        finally:
            subprocess.run(["pg_ctlcluster", version, name, "start"], check=True)
    finally:
        await producer.stop()
    assert set(answers) == {503} and during.status_code == 503, answers
    assert during.headers["Retry-After"] and "cannot be reached" in during.json()["detail"]

    await wait_recorded(db, ids, 180, "all 3,000 events after the outage")
    assert await EventStore(db).count_of(ids) == 3000  # once each: event_id is unique in the store
    checked, problem = await EventStore(db).verify()
    assert problem is None and checked >= 3000
    after = httpx.get(f"{pipeline.api_url}/v1/incidents", headers=headers, timeout=30)
    assert after.status_code == 200
    assert pids(pipeline) == before, "worker or recorder restarted\n" + pipeline.logs()
    log = pipeline.processes["recorder"].logfile.read_text()
    assert "recorder.postgres_unreachable" in log and "recorder.postgres_back" in log
    metrics = httpx.get(f"http://127.0.0.1:{s.recorder_metrics_port}/metrics").text
    assert 'vigil_dependency_up{component="recorder",dependency="postgres"} 1.0' in metrics
    assert re.search(r'vigil_outage_retries_total\{component="recorder",dependency="postgres"\} [1-9]', metrics)


async def test_an_event_ten_years_ahead_is_refused_and_closes_no_window(pipeline: Pipeline, db) -> None:
    s = pipeline.settings
    version = f"v-{uuid.uuid4().hex[:6]}"  # a version of its own, so its windows start empty
    model_id = "drift-future"  # the test policy gives this model hour-long event-time windows
    now = datetime.now(UTC)
    made = [e for e in hospital_events(400, seed=1003) if e["event_type"] == "InferenceMade"][:90]
    for e in made:
        e.update(model_id=model_id, model_version=version, occurred_at=(now - timedelta(minutes=1)).isoformat())
    future = dict(made[0], event_id=str(uuid.uuid4()), occurred_at=(now + timedelta(days=3653)).isoformat())
    starts = await end_offsets(s, s.topics(("inference.v1",)))
    # The reference (first 50), ten in the open window, the future one, then 30 more in the same window.
    await produce(s, [("inference.v1", json.dumps(e).encode()) for e in made[:60]])
    await produce(s, [("inference.v1", json.dumps(future).encode())])
    await produce(s, [("inference.v1", json.dumps(e).encode()) for e in made[60:]])
    await wait_recorded(db, [e["event_id"] for e in made], 60)

    async def refused() -> list:
        return [r for r in await dead_letters_since(db, starts) if r.reason_kind == "future_timestamp"]

    [letter] = await wait_until(refused, 180, "the future event's dead letter")
    assert letter.path == "occurred_at" and "days after the record was sent" in letter.reason
    assert await EventStore(db).count_of([future["event_id"]]) == 0
    metrics = httpx.get(f"http://127.0.0.1:{s.worker_metrics_port}/metrics").text
    late = re.search(rf'vigil_drift_values_skipped_total\{{model_id="{model_id}",reason="late"\}} (\S+)', metrics)
    assert late is None or float(late.group(1)) == 0, "events after the future one were counted late"


async def test_a_record_the_database_refuses_is_set_aside_and_its_batch_recorded(pipeline: Pipeline, db) -> None:
    """The gate refuses NUL characters; were one to reach the store (here: built past the gate),
    PostgreSQL refuses the batch, and the recorder writes it record by record instead."""
    made = [e for e in hospital_events(30, seed=1007) if e["event_type"] == "InferenceMade"][:3]
    good = [parse(e) for e in (made[0], made[2])]
    poison = InferenceMade.model_construct(**{**parse(made[1]).__dict__, "deployment": "st-mary\x00"})
    recorder = Recorder(pipeline.settings)
    recorder.store = EventStore(db, consumer=f"fallback-test-{uuid.uuid4().hex[:6]}")
    incoming = [Incoming("inference.v1", 0, 90_000_000 + i, e) for i, e in enumerate((good[0], poison, good[1]))]
    result = await recorder._record(incoming, [], {("inference.v1", 0): 90_000_003})
    assert result.stored == {"inference.v1": 2} and result.dead_letters == 1
    assert await EventStore(db).count_of([str(e.event_id) for e in good]) == 2
    assert await EventStore(db).count_of([made[1]["event_id"]]) == 0
    assert (await recorder.store.positions())[("inference.v1", 0)] == 90_000_003
    async with db.connect() as conn:
        [letter] = [d for d in await reads.dead_letters_of(conn) if d.source_offset == 90_000_001]
    assert letter.reason_kind == "recorder_error" and "the event store refused this record" in letter.reason
