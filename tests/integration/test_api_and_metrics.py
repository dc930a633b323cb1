"""The ingest API's contract (auth, errors, OpenAPI) and /metrics on every component."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TOKENS, Pipeline
from tests.integration.helpers import hospital_events, wait_recorded, wait_until

pytestmark = pytest.mark.integration


def post(pipeline: Pipeline, body, token: str | None = TOKENS["emitter"]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(pipeline.api_url + "/v1/events", json=body, headers=headers)


def test_tokens_and_roles(pipeline: Pipeline) -> None:
    event = hospital_events(1, seed=606)[0]
    assert post(pipeline, event, token=None).status_code == 401
    assert post(pipeline, event, token="nope").status_code == 401
    refused = post(pipeline, event, token=TOKENS["auditor"])
    assert refused.status_code == 403
    assert "needs one of emitter" in refused.json()["detail"]
    assert post(pipeline, event, token=TOKENS["admin"]).status_code == 202


async def test_a_batch_with_one_bad_event_is_refused_whole_with_index_path_and_reason(pipeline: Pipeline, db) -> None:
    batch = hospital_events(20, seed=607)
    batch[7] = {**batch[7], "occurred_at": "not a time"}
    response = post(pipeline, batch)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["index"] == 7 and problem["path"] == "occurred_at"
    assert "occurred_at" in problem["reason"]

    batch[7] = hospital_events(20, seed=607)[7]
    accepted = post(pipeline, batch)
    assert accepted.status_code == 202 and accepted.json()["accepted"] == 20
    ids = [e["event_id"] for e in batch]
    await wait_recorded(db, ids, 60, "the batch recorded")


def test_phi_is_refused_at_the_door(pipeline: Pipeline) -> None:
    event = next(e for e in hospital_events(10, seed=608) if e["event_type"] == "InferenceMade")
    response = post(pipeline, {**event, "patient_ref": "0012345678"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["path"] == "patient_ref"
    assert "0012345678" not in response.text


def test_not_json_and_oversized_batches(pipeline: Pipeline) -> None:
    raw = httpx.post(
        pipeline.api_url + "/v1/events",
        content=b"{nope",
        headers={"Authorization": f"Bearer {TOKENS['emitter']}", "content-type": "application/json"},
    )
    assert raw.status_code == 422 and "not valid UTF-8 JSON" in raw.text
    too_many = post(pipeline, [hospital_events(1, seed=609)[0]] * 1001)
    assert too_many.status_code == 413


def test_openapi_documents_ingest_and_every_event_schema(pipeline: Pipeline) -> None:
    spec = httpx.get(pipeline.api_url + "/openapi.json").json()
    assert "/v1/events" in spec["paths"]
    schemas = spec["components"]["schemas"]
    for name in ("InferenceMade", "OutcomeObserved", "ReviewRecorded", "IncidentReported", "ModelRegistered"):
        assert name in schemas


def test_openapi_describes_the_answer_of_every_route(pipeline: Pipeline) -> None:
    spec = httpx.get(pipeline.api_url + "/openapi.json").json()
    schemas = spec["components"]["schemas"]

    def described(schema: dict) -> bool:
        """A schema that says something: a reference to a component that has properties, or an array of one."""
        if "$ref" in schema:
            return described(schemas[schema["$ref"].rsplit("/", 1)[-1]])
        if schema.get("type") == "array":
            return described(schema["items"])
        return bool(schema.get("properties") or schema.get("oneOf") or schema.get("anyOf"))

    routes = [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    assert len(routes) >= 12
    for path, method, op in routes:
        ok = next(answer for code, answer in op["responses"].items() if code.startswith("2"))
        schema = ok.get("content", {}).get("application/json", {}).get("schema", {})
        assert described(schema), f"{method.upper()} {path} does not describe its answer: {schema}"


async def test_every_component_exposes_its_metrics(pipeline: Pipeline, db) -> None:
    s = pipeline.settings
    post(pipeline, hospital_events(5, seed=610))
    urls = {
        "api": pipeline.api_url + "/metrics/",
        "worker": f"http://127.0.0.1:{s.worker_metrics_port}/metrics",
        "recorder": f"http://127.0.0.1:{s.recorder_metrics_port}/metrics",
    }

    async def all_counted() -> bool:
        async with httpx.AsyncClient() as client:
            texts = {n: (await client.get(u)).text for n, u in urls.items()}
        return all(f'vigil_events_in_total{{component="{n}"' in t for n, t in texts.items())

    await wait_until(all_counted, 60, "events counted on every component")
    recorder = httpx.get(urls["recorder"]).text
    assert "vigil_processing_latency_seconds_bucket" in recorder
    assert "vigil_consumer_lag_records" in recorder or "vigil_events_out_total" in recorder
    for text in (httpx.get(u).text for u in urls.values()):
        assert "pt_" not in text, "no patient reference in any metric"
