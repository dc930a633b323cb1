"""Transparency on the real broker: a patient-facing bot that stops showing its AI disclaimer, and
outputs without an explanation, raise TransparencyViolation events with alerts (in Alertmanager)
and gauges; a later day with both restores them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from vigil_sdk import AsyncEmitter

from services.store import reads
from tests.conftest import RUN, TOKENS, Pipeline
from tests.integration.helpers import emit_all, wait_recorded, wait_until
from vigil.events import AlertRaised, TransparencyRestored, TransparencyViolation

pytestmark = pytest.mark.integration
MODEL = "transparency-probe"  # tests/policy.yml: 1-day window, judged from 20, explanations on 90 %
T0 = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
HIDDEN = range(30, 40)  # outputs of the first day shown without the disclaimer
UNEXPLAINED = range(0, 10)  # and without an explanation


def chats(version: str, start: datetime, n: int, hidden: range = range(0), unexplained: range = range(0)) -> list[dict]:
    return [
        {
            "event_type": "InferenceMade", "event_id": str(uuid.uuid4()),
            "occurred_at": (start + timedelta(minutes=i)).isoformat(), "model_id": MODEL, "model_version": version,
            "deployment": "web", "use_case": "symptom_information", "patient_ref": "pt_" + uuid.uuid4().hex[:24],
            "output": {"label": "self_care", "text_length": 400}, "explanation_present": i not in unexplained,
            "patient_facing": {"disclaimer_shown": i not in hidden, "emergency_detected": False, "escalated": False},
        }
        for i in range(n)
    ]  # fmt: skip


def registry() -> dict:
    return {
        "event_type": "ModelRegistered", "event_id": str(uuid.uuid4()), "occurred_at": T0.isoformat(),
        "model_id": MODEL, "name": "Transparency probe", "manufacturer": "Vigil tests",
        "use_case": "symptom_information", "risk_class": "low", "intended_use": "Exercises transparency.",
        "patient_facing": True,
    }  # fmt: skip


async def with_alerts(db, version: str, event_type: str) -> list[dict]:
    """The model version's signals once two of the type are recorded, each with its alert."""
    async with db.connect() as conn:
        kinds = (TransparencyViolation, TransparencyRestored, AlertRaised)
        found = [e.model_dump(mode="json") for e in await reads.of_type(conn, *kinds, model_id=MODEL, version=version)]
    alerted = {e["caused_by"] for e in found if e["event_type"] == "AlertRaised"}
    return found if len([e for e in found if e["event_type"] == event_type and e["event_id"] in alerted]) >= 2 else []


async def test_missing_disclaimers_and_explanations_raise_violations_that_a_later_day_restores(
    pipeline: Pipeline, db, tmp_path: Path
) -> None:
    version = f"t-{RUN}"
    first = chats(version, T0, 60, HIDDEN, UNEXPLAINED)
    s = pipeline.settings
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        await emit_all(emitter, [registry(), *first])
    await wait_recorded(db, [e["event_id"] for e in first], 60)

    found = await wait_until(lambda: with_alerts(db, version, "TransparencyViolation"), 60, "two violations")
    violations = {e["kind"]: e for e in found if e["event_type"] == "TransparencyViolation"}
    assert set(violations) == {"disclaimer_shown", "explanation_present"}
    hidden = {first[i]["event_id"] for i in HIDDEN}
    unexplained = {first[i]["event_id"] for i in UNEXPLAINED}
    assert (
        violations["disclaimer_shown"]["limit"] == 1.0
        and set(violations["disclaimer_shown"]["inference_ids"]) <= hidden
    )
    assert violations["explanation_present"]["limit"] == 0.9
    assert set(violations["explanation_present"]["inference_ids"]) <= unexplained
    alerts = {e["caused_by"]: e for e in found if e["event_type"] == "AlertRaised"}
    for violation in violations.values():
        alert = alerts[violation["event_id"]]
        assert alert["alert_name"] == "TransparencyViolation" and alert["severity"] == "warning"
        assert "pt_" not in alert["summary"]

    labels = f'kind="disclaimer_shown",model_id="{MODEL}",model_version="{version}"'

    async def counted_all() -> bool:
        metrics = httpx.get(f"http://127.0.0.1:{s.worker_metrics_port}/metrics").text
        return f"vigil_transparency_share{{{labels}}} {50 / 60}" in metrics

    await wait_until(counted_all, 30, "50 of 60 disclaimers on the worker's gauge")
    assert (
        f"vigil_transparency_violation_active{{{labels}}} 1.0"
        in httpx.get(f"http://127.0.0.1:{s.worker_metrics_port}/metrics").text
    )

    # The store's view of the same outputs, by the same core.
    answer = httpx.get(f"{pipeline.api_url}/v1/models/{MODEL}/oversight",
                       params={"by": "deployment", "window": "all", "version": version},
                       headers={"Authorization": f"Bearer {TOKENS['auditor']}"}, timeout=30)  # fmt: skip
    body = answer.json()
    assert body["transparency"][0] == {
        "group": "everyone", "outputs": 60, "patient_facing": 60, "disclaimer_shown": 50 / 60,
        "explanation_present": 50 / 60, "consent_recorded": 0.0, "score_present": 0.0,
    }  # fmt: skip
    assert any("disclaimer_shown" in line for line in body["verdict"])

    # Three days later every output carries both: the one-day window holds only that day.
    later = chats(version, T0 + timedelta(days=3), 30)
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        await emit_all(emitter, later)
    found = await wait_until(lambda: with_alerts(db, version, "TransparencyRestored"), 60, "two restorations")
    ended = {e["kind"]: e for e in found if e["event_type"] == "TransparencyRestored"}
    assert {k: e["violation_event_id"] for k, e in ended.items()} == {k: v["event_id"] for k, v in violations.items()}
    assert all(e["value"] == 1.0 for e in ended.values())
    resolved = [e for e in found if e["event_type"] == "AlertRaised" and e["resolved"]]
    assert {a["labels"]["kind"] for a in resolved} == set(violations)


async def test_a_transparency_alert_reaches_alertmanager_with_its_owner_action_and_runbook(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Alertmanager holds an alert for a day from when its cause happened: these outputs are recent."""
    version = f"t-{RUN}-now"
    recent = chats(version, datetime.now(UTC) - timedelta(hours=1), 30, hidden=range(5, 10))
    s = pipeline.settings
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        await emit_all(emitter, [registry(), *recent])

    async def paged() -> list[dict]:
        active = httpx.get(f"{s.alertmanager_url}/api/v2/alerts").json()
        return [a for a in active if a["labels"].get("alertname") == "TransparencyViolation"
                and a["labels"].get("model_version") == version]  # fmt: skip

    [alert] = await wait_until(paged, 60, "the alert in Alertmanager")
    assert alert["labels"]["owner"] == "clinical-safety" and alert["labels"]["kind"] == "disclaimer_shown"
    assert alert["annotations"]["runbook_url"].endswith("/TransparencyViolation.md")
    assert "disclaimer" in alert["annotations"]["action"] and alert["annotations"]["review_cadence"] == "weekly"
    assert [r["name"] for r in alert["receivers"]] == ["clinical-safety"]  # routed by its owner
    assert not any("pt_" in value for value in alert["annotations"].values())
