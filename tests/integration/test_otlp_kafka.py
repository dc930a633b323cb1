"""OTLP from Kafka on the real stack: what an OpenTelemetry Collector's `kafka` exporter writes (one
ExportTraceServiceRequest per record, `otlp_proto` or `otlp_json`) is read by `vigil otlp-reader`
into InferenceMade events; refused spans and records that are no OTLP become dead letters with
their reasons; a reader SIGKILLed and restarted doubles nothing.

No Collector binary is on this machine: the records are encoded by the OpenTelemetry SDK's own
OTLP encoder from spans its tracer made, the message the Collector forwards unchanged."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from sqlalchemy import text

from services.otlp import NAMESPACE
from services.processes import Background
from tests.conftest import Pipeline
from tests.e2e.test_incidents import register
from tests.integration.helpers import count_events, hospital_events, wait_recorded, wait_until
from tests.integration.test_otlp import SECRET_PROMPT, genai, otlp_json, span_json

pytestmark = pytest.mark.integration


class Kept(SpanExporter):
    """The spans the SDK's tracer finished, to be encoded as a Collector would forward them."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += spans
        return SpanExportResult.SUCCESS


def made_spans(n: int) -> tuple[bytes, list[str]]:
    """n GenAI spans from the SDK's tracer as one otlp_proto record, and their event ids."""
    kept = Kept()
    provider = TracerProvider(resource=Resource.create({"service.name": "asknurse-web"}))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    for _ in range(n):
        with provider.get_tracer("vigil-test").start_as_current_span("chat gpt-4o", attributes=genai("symptom-chat")):
            pass
    provider.shutdown()
    ids = [str(uuid.uuid5(NAMESPACE, f"{s.context.trace_id:032x}/{s.context.span_id:016x}")) for s in kept.spans]
    return encode_spans(kept.spans).SerializeToString(), ids


def span_id(span: dict) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{span['traceId']}/{span['spanId']}"))


async def test_a_collectors_kafka_topic_of_genai_spans_becomes_inferences(
    pipeline: Pipeline, db, tmp_path: Path
) -> None:
    await register(pipeline, db, [e for e in hospital_events(6, seed=808) if e["event_type"].startswith("Model")])
    s = pipeline.settings
    topic = f"{s.topic_prefix}otlp_spans"
    env = {"VIGIL_OTLP_TOPIC": topic, "VIGIL_OTLP_READER_METRICS_PORT": "19113"}
    reader = Background("otlp-reader", [sys.executable, "-m", "services.cli", "otlp-reader"], tmp_path, env)
    proto, proto_ids = made_spans(3)
    good = span_json(genai("symptom-chat"))
    leaking = span_json(genai("symptom-chat", **{"vigil.subgroup.x": "a@b.org"}))
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
    await producer.start()
    reader.start()
    try:
        garbage = await producer.send_and_wait(topic, b"\x00\x01 not an OTLP request")
        await producer.send_and_wait(topic, proto)
        # otlp_json: OTLP/JSON with hex ids, as the Collector's marshaler writes it
        await producer.send_and_wait(topic, json.dumps(otlp_json([good, leaking])).encode())
        taken = [*proto_ids, span_id(good)]
        await wait_recorded(db, taken, 90, "the spans of both encodings recorded as inferences")
        assert await count_events(db, [span_id(leaking)]) == 0

        async def letters() -> list:
            async with db.connect() as conn:
                rows = await conn.execute(text("SELECT reason, reason_kind, source_offset, payload FROM dead_letters "
                                               "WHERE source_topic = :t"), {"t": topic})  # fmt: skip
            found = list(rows)
            return found if {r.reason_kind for r in found} >= {"schema", "phi"} else []

        found = {r.reason_kind: r for r in await wait_until(letters, 60, "the dead letters of the refused")}
        assert found["schema"].source_offset == garbage.offset and "not OTLP" in found["schema"].reason
        assert found["phi"].payload is None and "a@b.org" not in found["phi"].reason  # identifiers withheld
        assert f"span {leaking['traceId']}/{leaking['spanId']}" in found["phi"].reason
        async with db.connect() as conn:
            content = (await conn.execute(text("SELECT count(*) FROM events WHERE body LIKE :s"),
                                          {"s": f"%{SECRET_PROMPT}%"})).scalar_one()  # fmt: skip
        assert content == 0, "message content reached the store"

        # A crash before the commit: what comes after is read, what was taken is not doubled.
        reader.kill()
        more, more_ids = made_spans(2)
        await producer.send_and_wait(topic, proto)  # the Collector retrying a record it sent
        await producer.send_and_wait(topic, more)
        reader.start()
        await wait_recorded(db, more_ids, 90, "the spans sent while the reader was down")
        assert await count_events(db, [*taken, *more_ids]) == len(taken) + len(more_ids)
        async with db.connect() as conn:
            kinds = (await conn.execute(text("SELECT count(*) FROM dead_letters WHERE source_topic = :t"),
                                        {"t": topic})).scalar_one()  # fmt: skip
        assert kinds == 2  # each refused once, however often read
    finally:
        reader.stop()
        await producer.stop()
