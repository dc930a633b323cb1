"""OTLP ingest on the real stack: spans exported by the OpenTelemetry SDK's own OTLP/HTTP exporter,
and raw OTLP JSON (gzip) and protobuf, become InferenceMade events; refusals come back in OTLP's
partial success and as dead letters with their reasons; message content is never stored."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from typing import Any

import httpx
import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from sqlalchemy import text

from services.otlp import NAMESPACE
from services.store import reads
from tests.conftest import RUN, TOKENS, Pipeline
from tests.e2e.test_incidents import register
from tests.integration.helpers import hospital_events, wait_until

pytestmark = pytest.mark.integration
SECRET_PROMPT = "I have crushing chest pain since an hour"  # content: must never reach the store
PATIENT = "pt-" + "7f3a9c2e1b4d6a8f"


def genai(model: str, **more: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 40,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": SECRET_PROMPT}]}]),
        "vigil.model_id": model, "vigil.model_version": "0.9.1", "vigil.use_case": "symptom_information",
        "vigil.patient_ref": PATIENT, "vigil.subgroup.sex": "female", "vigil.output.label": "self_care",
        "vigil.patient_facing.disclaimer_shown": True, "vigil.patient_facing.emergency_detected": False,
        "vigil.patient_facing.escalated": False, "vigil.country": "DE", **more,
    }  # fmt: skip


async def stored(db, event_id: uuid.UUID) -> dict | None:
    async with db.connect() as conn:
        row = (await conn.execute(text("SELECT body FROM events WHERE event_id = :id"), {"id": str(event_id)})).first()
    return json.loads(row.body) if row else None


async def test_genai_spans_from_the_sdk_become_inferences(pipeline: Pipeline, db) -> None:
    await register(pipeline, db, [e for e in hospital_events(6, seed=808) if e["event_type"].startswith("Model")])
    exporter = OTLPSpanExporter(endpoint=pipeline.api_url + "/v1/traces",
                                headers={"Authorization": f"Bearer {TOKENS['emitter']}"})  # fmt: skip
    provider = TracerProvider(resource=Resource.create({"service.name": "asknurse-web", "vigil.deployment": "web"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("vigil-test")
    with tracer.start_as_current_span("chat gpt-4o", attributes=genai("symptom-chat")) as span:
        time.sleep(0.01)
        current = span.get_span_context()
    old = {k: v for k, v in genai("symptom-chat").items() if k != "gen_ai.provider.name"} | {"gen_ai.system": "openai"}
    with tracer.start_as_current_span("chat (older conventions)", attributes=old) as legacy:
        earlier = legacy.get_span_context()
    with tracer.start_as_current_span("GET /health", attributes={"http.request.method": "GET"}) as plain:
        ignored = plain.get_span_context()
    provider.shutdown()

    def event_id(ctx) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"{ctx.trace_id:032x}/{ctx.span_id:016x}")

    async def recorded() -> dict | None:
        return await stored(db, event_id(current)) if await stored(db, event_id(earlier)) else None

    body = await wait_until(recorded, 60, "the GenAI spans recorded as inferences")
    assert (body["model_id"], body["model_version"], body["deployment"]) == ("symptom-chat", "0.9.1", "web")
    assert body["resources"]["tokens_in"] == 120 and body["resources"]["tokens_out"] == 40
    assert body["resources"]["latency_ms"] >= 10 and body["subgroup"] == {"sex": "female"}
    assert body["features"]["input_length"] == len(SECRET_PROMPT) and body["features"]["finish_reason"] == "stop"
    assert body["patient_facing"] == {"disclaimer_shown": True, "emergency_detected": False, "escalated": False}
    assert await stored(db, event_id(ignored)) is None
    async with db.connect() as conn:
        leaked = (await conn.execute(text("SELECT count(*) FROM events WHERE body LIKE :s"),
                                     {"s": f"%{SECRET_PROMPT}%"})).scalar_one()  # fmt: skip
    assert leaked == 0, "message content reached the store"

    # The worker takes it like any other inference: the chatbot did not escalate, the follow-up
    # found an emergency, and the outcome join raises the missed escalation's candidate.
    outcome = {"event_type": "OutcomeObserved", "event_id": str(uuid.uuid4()), "occurred_at": body["occurred_at"],
               "inference_id": body["event_id"], "model_id": "symptom-chat", "observed_at": body["occurred_at"],
               "label": "emergency", "critical_condition": True, "source": "follow_up", "emergency": True}  # fmt: skip
    sent = httpx.post(pipeline.api_url + "/v1/events", json=outcome,
                      headers={"Authorization": f"Bearer {TOKENS['emitter']}"})  # fmt: skip
    assert sent.status_code == 202, sent.text

    async def candidate() -> list:
        async with db.connect() as conn:
            return await reads.candidates_naming(conn, body["event_id"])

    await wait_until(candidate, 60, "the missed escalation of a span-borne inference")


def otlp_json(spans: list[dict]) -> dict:
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "w"}}]},
                               "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}  # fmt: skip


def span_json(attrs: dict[str, object]) -> dict:
    def value(v: object) -> dict:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, list):
            return {"arrayValue": {"values": [value(x) for x in v]}}
        return {"stringValue": str(v)}

    now = time.time_ns()
    return {"traceId": uuid.uuid4().hex, "spanId": uuid.uuid4().hex[:16], "name": "chat", "kind": 3,
            "startTimeUnixNano": str(now - 5_000_000), "endTimeUnixNano": str(now),
            "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()]}  # fmt: skip


async def test_refused_spans_come_back_in_the_partial_success_and_as_dead_letters(pipeline: Pipeline, db) -> None:
    await register(pipeline, db, [e for e in hospital_events(6, seed=808) if e["event_type"].startswith("Model")])
    good = span_json(genai("symptom-chat", **{"vigil.deployment": "web"}))
    nameless = span_json({k: v for k, v in genai("symptom-chat").items() if k != "vigil.model_id"})
    leaking = span_json(genai("symptom-chat", **{"vigil.subgroup.contact": "call me at jane.doe@example.org"}))
    body = gzip.compress(json.dumps(otlp_json([good, nameless, leaking])).encode())
    headers = {"Authorization": f"Bearer {TOKENS['emitter']}", "Content-Type": "application/json",
               "Content-Encoding": "gzip"}  # fmt: skip
    answer = httpx.post(pipeline.api_url + "/v1/traces", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "model_id" in partial["errorMessage"] and "e-mail" in partial["errorMessage"]
    assert "jane.doe" not in partial["errorMessage"]

    async def letters() -> list:
        async with db.connect() as conn:
            rows = await conn.execute(text("SELECT reason_kind, path, payload FROM dead_letters "
                                           "WHERE source_topic = 'otlp:/v1/traces'"))  # fmt: skip
        found = list(rows)
        return found if {r.reason_kind for r in found} >= {"schema", "phi"} else []

    found = await wait_until(letters, 60, "the refused spans' dead letters")
    assert all(r.payload is None for r in found if r.reason_kind == "phi")  # identifiers are withheld
    good_id = uuid.uuid5(NAMESPACE, f"{good['traceId']}/{good['spanId']}")
    await wait_until(lambda: stored(db, good_id), 60, "the good span of the batch recorded")

    # Protobuf in, protobuf out; the wrong role, a body that is no OTLP and a wrong type are refused in words.
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from services.otlp import _hex_ids_as_base64

    request = json_format.ParseDict(_hex_ids_as_base64(otlp_json([nameless])), ExportTraceServiceRequest())
    binary = {**headers, "Content-Type": "application/x-protobuf", "Content-Encoding": ""}
    proto = httpx.post(pipeline.api_url + "/v1/traces", content=request.SerializeToString(), headers=binary)
    assert proto.status_code == 200 and proto.headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(proto.content).partial_success.rejected_spans == 1
    auditor = {"Authorization": f"Bearer {TOKENS['auditor']}", "Content-Type": "application/json"}
    assert httpx.post(pipeline.api_url + "/v1/traces", content=b"{}", headers=auditor).status_code == 403
    garbage = httpx.post(pipeline.api_url + "/v1/traces", content=b"not protobuf at all \xff", headers=binary)
    assert garbage.status_code == 400 and "not an OTLP" in garbage.text
    wrong = httpx.post(pipeline.api_url + "/v1/traces", content=b"{}", headers={**binary, "Content-Type": "text/plain"})
    assert wrong.status_code == 400 and "Content-Type" in wrong.text


async def test_span_borne_inferences_feed_drift_like_any_other(pipeline: Pipeline, db) -> None:
    """drift-idle (tests/policy.yml): a reference of the first 300 events, windows of one minute.
    300 spans as before, then 200 from a new scanner: the worker measures the shift on them."""
    from tests.integration.test_drift import IDLE, drift_events
    from tests.integration.test_drift import registry as drift_registry

    version = f"otlp-{RUN}"
    await register(pipeline, db, drift_registry(version, IDLE))
    rng = np.random.default_rng(12)

    def spans(n: int, shifted: bool) -> dict:
        made = [span_json({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                           "vigil.model_id": IDLE, "vigil.model_version": version, "vigil.use_case": "imaging",
                           "vigil.deployment": "site-a", "vigil.patient_ref": "pt_" + uuid.uuid4().hex[:24],
                           "vigil.feature.image_contrast": float(round(rng.normal(0.70 if shifted else 0.62, 0.05), 4)),
                           "vigil.output.label": "benign"}) for _ in range(n)]  # fmt: skip
        return otlp_json(made)

    headers = {"Authorization": f"Bearer {TOKENS['emitter']}", "Content-Type": "application/json"}
    sent = httpx.post(pipeline.api_url + "/v1/traces", json=spans(300, False), headers=headers, timeout=30)
    assert sent.status_code == 200 and "partialSuccess" not in sent.json(), sent.text

    async def referenced() -> list[dict]:
        return [e for e in await drift_events(db, version) if e["event_type"] == "DriftReferenceSet"]

    [reference] = await wait_until(referenced, 60, "the first 300 span-borne inferences as the drift reference")
    assert reference["source"] == "first_events" and "image_contrast" in {p["feature"] for p in reference["profiles"]}
    sent = httpx.post(pipeline.api_url + "/v1/traces", json=spans(200, True), headers=headers, timeout=30)
    assert sent.status_code == 200, sent.text

    async def detected() -> list[dict]:
        return [e for e in await drift_events(db, version)
                if e["event_type"] == "DriftDetected" and e["feature"] == "image_contrast"]  # fmt: skip

    [drift] = await wait_until(detected, 120, "DriftDetected on the span-borne inferences")
    assert drift["reference_size"] == 300 and drift["current_size"] >= 150  # the policy judges from 150
