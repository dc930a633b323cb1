"""Drift on the real broker: a shift injected into a model's stream raises DriftDetected and an alert;
when it is gone, DriftResolved follows. References come from the first events or from a file."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from vigil_sdk import AsyncEmitter

from services.store import reads
from tests.conftest import RUN, TOKENS, Pipeline
from tests.integration.helpers import emit_all, ids_on_partition, wait_recorded, wait_until
from vigil.events import AlertRaised, DriftDetected, DriftReferenceSet, DriftResolved

pytestmark = pytest.mark.integration
MODEL = "drift-probe"  # tests/policy.yml: reference of 300 events, count windows of 200, judged from 150
IDLE = "drift-idle"  # the same, but time windows of one minute and no grace period
T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


def registry(version: str, model: str = MODEL) -> list[dict]:
    return [
        {
            "event_type": "ModelRegistered", "event_id": str(uuid.uuid4()), "occurred_at": T0.isoformat(),
            "model_id": model, "name": "Drift probe", "manufacturer": "Vigil tests", "use_case": "imaging",
            "risk_class": "medium", "intended_use": "Exercises drift monitoring.",
        },
        {
            "event_type": "ModelVersionReleased", "event_id": str(uuid.uuid4()), "occurred_at": T0.isoformat(),
            "model_id": model, "model_version": version, "released_at": T0.isoformat(),
        },
    ]  # fmt: skip


def inferences(
    rng: np.random.Generator, version: str, n: int, start: int, shifted: bool = False, model: str = MODEL
) -> list[dict]:
    """Image contrast from a new scanner is higher; its language mix is unseen before."""
    out = []
    for i in range(n):
        contrast = rng.normal(0.70 if shifted else 0.62, 0.05)
        out.append(
            {
                "event_type": "InferenceMade", "event_id": str(uuid.uuid4()),
                "occurred_at": (T0 + timedelta(minutes=start + i)).isoformat(), "model_id": model,
                "model_version": version, "deployment": "site-a", "use_case": "imaging",
                "patient_ref": "pt_" + uuid.uuid4().hex[:24],
                "features": {"image_contrast": round(float(contrast), 4), "scanner": "vendor_c" if shifted else
                             str(rng.choice(["vendor_a", "vendor_b"]))},
                "output": {"label": "benign", "score": round(float(rng.uniform()), 3)},
            }
        )  # fmt: skip
    return out


def shift_stream(version: str, partitions: int, recover: bool = True) -> list[dict]:
    """Reference, a window as before, a window from the new scanner, then (if `recover`) one as
    before again; a last event opens the next window, so the one before closes. It carries a
    feature the reference never had, which is counted and left out.

    Windows by count and a first-events reference take events in the order they reach the worker's
    second stage, which is the order sent only within one partition (streams/drift.py): the
    stream is sent on one partition, so that each window holds the events meant for it."""
    rng = np.random.default_rng(5)
    windows = [*inferences(rng, version, 300, 0), *inferences(rng, version, 200, 300)]
    windows += inferences(rng, version, 200, 500, shifted=True)
    if recover:
        windows += inferences(rng, version, 200, 700)
    opener = inferences(rng, version, 1, 900)[0]
    opener["features"]["new_sensor"] = 1.0
    on_one = ids_on_partition(0, partitions, len(windows) + 1)
    for event, event_id in zip([*windows, opener], on_one, strict=True):
        event["event_id"] = event_id
    return [*registry(version), *windows, opener]


async def drift_events(db, version: str) -> list[dict]:
    async with db.connect() as conn:
        found = await reads.of_type(conn, DriftDetected, DriftResolved, DriftReferenceSet, version=version)
        return [e.model_dump(mode="json") for e in found]


async def test_a_shift_is_detected_alerted_and_resolved(pipeline: Pipeline, db, tmp_path: Path) -> None:
    version = f"shift-{RUN}"
    s = pipeline.settings
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        # Windows count:0 as before, count:1 shifted, count:2 as before.
        await emit_all(emitter, shift_stream(version, s.topic_partitions))

    async def resolved() -> list[dict]:
        found = await drift_events(db, version)
        return (
            found if any(e["event_type"] == "DriftResolved" and e["feature"] == "image_contrast" for e in found) else []
        )

    found = await wait_until(resolved, 90, "DriftResolved for image_contrast")
    reference = found[0]
    assert reference["event_type"] == "DriftReferenceSet" and reference["source"] == "first_events"
    assert {p["feature"] for p in reference["profiles"]} >= {"image_contrast", "scanner", "output.label"}
    assert "output.score" in {p["feature"] for p in reference["profiles"]}  # profiled; the policy ignores it

    changes = [(e["event_type"], e["feature"], e["window"]) for e in found[1:]]
    assert ("DriftDetected", "image_contrast", "count:1") in changes
    assert ("DriftDetected", "scanner", "count:1") in changes  # an unseen category is counted, not dropped
    assert ("DriftDetected", "(dataset)", "count:1") in changes
    assert ("DriftResolved", "image_contrast", "count:2") in changes
    assert not any(f == "output.score" for _, f, _ in changes)
    detected = next(e for e in found if e["event_type"] == "DriftDetected" and e["feature"] == "image_contrast")
    assert detected["method"] == "ks" and detected["score"] <= 0.05
    assert (detected["reference_size"], detected["current_size"]) == (300, 200)
    assert datetime.fromisoformat(detected["window_start"]) == T0 + timedelta(minutes=500)

    resolved_event = next(e for e in found if e["event_type"] == "DriftResolved" and e["feature"] == "image_contrast")

    async def alerts() -> dict[str, dict]:
        # Alerts travel on their own topic: they may be recorded a moment after the drift events.
        async with db.connect() as conn:
            found = await reads.of_type(conn, AlertRaised, version=version)
            by_cause = {(a := e.model_dump(mode="json"))["caused_by"]: a for e in found}
        return by_cause if {detected["event_id"], resolved_event["event_id"]} <= set(by_cause) else {}

    by_cause = await wait_until(alerts, 30, "the alerts of the detection and its resolution")
    assert by_cause[detected["event_id"]]["alert_name"] == "FeatureDrift"
    assert by_cause[detected["event_id"]]["labels"] == {"feature": "image_contrast", "method": "ks"}
    assert by_cause[resolved_event["event_id"]]["resolved"] is True

    metrics = httpx.get(f"http://127.0.0.1:{s.worker_metrics_port}/metrics").text
    assert f'vigil_drift_active{{feature="image_contrast",model_id="{MODEL}",model_version="{version}"}} 0.0' in metrics
    assert (
        f'vigil_drift_score{{feature="scanner",method="chisquare",model_id="{MODEL}",model_version="{version}"}}'
        in metrics
    )


async def test_the_last_window_of_a_stream_that_stops_is_judged_when_its_time_is_up(
    pipeline: Pipeline, db, tmp_path: Path
) -> None:
    """No event follows the shifted window, yet the worker's clock closes it once its minute is over."""
    version = f"idle-{RUN}"
    rng = np.random.default_rng(9)
    stream = [
        *inferences(rng, version, 300, 0, model=IDLE),
        *inferences(rng, version, 200, 0, shifted=True, model=IDLE),
    ]
    now = datetime.now(UTC)
    for event in stream:
        event["occurred_at"] = now.isoformat()  # all in one window, which ends within a minute
    s = pipeline.settings
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        await emit_all(emitter, [*registry(version, IDLE), *stream])

    async def detected() -> list[dict]:
        found = [e for e in await drift_events(db, version) if e["event_type"] == "DriftDetected"]
        return found if {e["feature"] for e in found} >= {"image_contrast", "scanner"} else []

    found = await wait_until(detected, 150, "DriftDetected in the last window, with no event after it")
    minute = now.replace(second=0, microsecond=0)
    judged = {(e["window"], e["current_size"]) for e in found if e["feature"] in ("image_contrast", "scanner")}
    assert judged == {(minute.isoformat(), 200)}
    assert datetime.now(UTC) >= minute + timedelta(minutes=1)  # not before the window's end


async def test_an_uploaded_reference_replaces_the_first_events(pipeline: Pipeline, db, tmp_path: Path) -> None:
    version = f"upload-{RUN}"
    rng = np.random.default_rng(8)
    headers = {"Authorization": f"Bearer {TOKENS['emitter']}"}
    registered = registry(version)
    assert httpx.post(pipeline.api_url + "/v1/events", json=registered, headers=headers).status_code == 202
    await wait_recorded(db, [e["event_id"] for e in registered], 30)

    # The validation set the manufacturer shipped: contrast centred on 0.70, one scanner.
    frame = pd.DataFrame(
        {"image_contrast": rng.normal(0.70, 0.05, 2000).round(4), "scanner": ["vendor_c"] * 2000, "site": [None] * 2000}
    )
    url = f"{pipeline.api_url}/v1/models/{MODEL}/versions/{version}/drift-reference"
    body = io.BytesIO()
    frame.to_parquet(body)
    answer = httpx.put(
        url, content=body.getvalue(), headers={**headers, "Content-Type": "application/vnd.apache.parquet"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    assert {f["feature"]: f["n"] for f in answer.json()["features"]} == {"image_contrast": 2000, "scanner": 2000}

    # Live data from the old scanners drifts from that reference at once: no first-events reference is made.
    s = pipeline.settings
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        await emit_all(emitter, inferences(rng, version, 201, 0))

    async def detected() -> list[dict]:
        found = [e for e in await drift_events(db, version) if e["event_type"] == "DriftDetected"]
        return found if {e["feature"] for e in found} >= {"image_contrast", "scanner"} else []

    found = await wait_until(detected, 90, "DriftDetected for both features against the uploaded reference")
    contrast = next(e for e in found if e["feature"] == "image_contrast")
    assert contrast["method"] == "wasserstein" and contrast["reference_size"] == 2000  # Evidently's rule above 1,000
    references = [e for e in await drift_events(db, version) if e["event_type"] == "DriftReferenceSet"]
    assert [r["source"] for r in references] == ["upload"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b"a,b\n1,inf\n", "text/csv", 422, "column 'b', row 1: infinite value"),
        (b"a,b\n", "text/csv", 422, "no rows"),
        (b"\x00\x01not parquet", "application/vnd.apache.parquet", 422, "could not be read"),
        (b"a\n1\n", "application/json", 415, "send text/csv or application/vnd.apache.parquet"),
    ],
)
def test_bad_reference_files_are_refused_with_the_reason(pipeline: Pipeline, content, content_type, status, message):
    answer = httpx.put(
        f"{pipeline.api_url}/v1/models/{MODEL}/versions/x/drift-reference",
        content=content,
        headers={"Authorization": f"Bearer {TOKENS['emitter']}", "Content-Type": content_type},
    )
    assert answer.status_code == status and message in answer.text, answer.text


def test_unknown_models_cannot_get_a_reference(pipeline: Pipeline) -> None:
    answer = httpx.put(
        f"{pipeline.api_url}/v1/models/no-such-model/versions/1/drift-reference",
        content=b"a\n1\n",
        headers={"Authorization": f"Bearer {TOKENS['emitter']}", "Content-Type": "text/csv"},
        timeout=30,
    )
    assert answer.status_code == 422 and "unknown model 'no-such-model'" in answer.text
