"""The PHI corpus sent for real, over HTTP and straight to Kafka: every event refused, and no
identifier in any log line, metric, alert or dead letter afterwards (all captured and searched)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.store import reads
from tests.conftest import TOKENS, Pipeline
from tests.integration.helpers import hospital_events, wait_until
from tests.integration.test_dead_letters import end_offsets
from tests.unit.test_phi_corpus import IN_TEXT, UNDER_KEY

pytestmark = pytest.mark.integration


async def test_identifiers_are_refused_and_appear_nowhere(pipeline: Pipeline, db) -> None:
    s = pipeline.settings
    template = next(e for e in hospital_events(10, seed=1006) if e["event_type"] == "InferenceMade")
    planted = [("note", value) for _, value in IN_TEXT] + [(key, value) for _, key, value in UNDER_KEY]
    # Bare numbers ("1961", "12345") and one or two letters are refused too, but searching for them
    # would find every counter that happens to hold that value.
    secrets = [value for _, value in planted if len(value) > 3 and not value.isdigit()]
    events = [dict(template, event_id=str(uuid.uuid4()), subgroup={**template["subgroup"], key: value})
              for key, value in planted]  # fmt: skip

    emitter = {"Authorization": f"Bearer {TOKENS['emitter']}"}
    for event in events:
        answer = httpx.post(f"{pipeline.api_url}/v1/events", json=event, headers=emitter, timeout=30)
        assert answer.status_code == 422 and "PHI guard" in answer.text, answer.text
        assert not any(secret in answer.text for secret in secrets)

    starts = await end_offsets(s, s.topics(("inference.v1",)))
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(s.topic("inference.v1"), json.dumps(event).encode(), key=b"phi")
    finally:
        await producer.stop()

    async def refused() -> list:
        async with db.connect() as conn:
            rows = await reads.dead_letters_of(conn, kinds=["phi"])
        mine = [r for r in rows if (r.source_topic, r.source_partition) in starts
                and r.source_offset >= starts[(r.source_topic, r.source_partition)]]  # fmt: skip
        return mine if len(mine) >= len(events) else []

    letters = await wait_until(refused, 300, "a PHI dead letter for every planted identifier")
    assert all(letter.payload is None for letter in letters)  # the bytes are withheld
    seen = {"dead letters": "\n".join(letter.reason for letter in letters)}
    seen |= {
        f"{n} log": p.logfile.read_text(errors="replace") for n, p in pipeline.processes.items() if p.logfile.exists()
    }
    for name, port in (("worker", s.worker_metrics_port), ("recorder", s.recorder_metrics_port)):
        seen[f"{name} metrics"] = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    seen["api metrics"] = httpx.get(f"{pipeline.api_url}/metrics/").text
    seen["alertmanager"] = httpx.get(f"{s.alertmanager_url}/api/v2/alerts").text
    leaked = {secret: [where for where, text in seen.items() if secret in text] for secret in secrets}
    assert {secret: where for secret, where in leaked.items() if where} == {}
