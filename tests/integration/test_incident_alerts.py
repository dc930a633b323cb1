"""Incident alerts in Alertmanager end when their cause ends and outlive their active time while it
stands: on the real worker, notifier and Alertmanager, with alerts active for 40 s (conftest)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from vigil_sdk import AsyncEmitter

from tests.conftest import Pipeline
from tests.e2e.test_incidents import call, new_incident, register
from tests.integration.helpers import hospital_events, wait_until
from vigil.alerts import incident_id_for

pytestmark = pytest.mark.integration


def active(pipeline: Pipeline, incident_id: str) -> dict[tuple[str, str], dict]:
    """The incident's alerts Alertmanager holds active, by name and regime."""
    alerts = httpx.get(f"{pipeline.settings.alertmanager_url}/api/v2/alerts", params={"active": "true"}).json()
    return {
        (a["labels"]["alertname"], a["labels"].get("regime", "")): a
        for a in alerts
        if a["labels"].get("incident_id") == incident_id and a["status"]["state"] == "active"
    }


async def test_overdue_alerts_outlive_their_active_time_and_resolve_as_reports_are_filed(
    pipeline: Pipeline, db
) -> None:
    registry = [e for e in hospital_events(6, seed=808) if e["event_type"].startswith("Model")]
    await register(pipeline, db, registry)
    # Aware 20 days ago: overdue before triage, and under the 10-day clocks triage sets.
    created = call(pipeline, "POST", "/v1/incidents", json=new_incident(datetime.now(UTC) - timedelta(days=20)))
    assert created.status_code == 201, created.text
    iid = created.json()["incident_id"]
    overdue = {("IncidentReportOverdue", "eu-mdr"), ("IncidentReportOverdue", "eu-ai-act")}

    async def paged() -> bool:
        return overdue <= set(active(pipeline, iid))

    await wait_until(paged, 60, "both overdue alerts in Alertmanager")
    first = active(pipeline, iid)[("IncidentReportOverdue", "eu-mdr")]

    # Untriaged past its alerts' active time (40 s): still active, because the worker re-sends it.
    await asyncio.sleep(pipeline.settings.alert_active_for.total_seconds() + 10)
    still = active(pipeline, iid)
    assert overdue <= set(still), f"the overdue alerts expired while the incident stayed untriaged: {still}"
    assert still[("IncidentReportOverdue", "eu-mdr")]["endsAt"] > first["endsAt"]

    # Triage replaces the provisional clocks (the real ones are overdue too: awareness was days ago);
    # then each regime's report is filed and its alert ends, the other's stays.
    triage = {"harm": "death", "causality": "probable", "expected": False, "rationale": "r"}
    assert call(pipeline, "POST", f"/v1/incidents/{iid}/triage", json=triage).status_code == 200
    assert call(pipeline, "POST", f"/v1/incidents/{iid}/reportability",
                json={"reportable": True, "rationale": "r"}).status_code == 200  # fmt: skip
    report = {"regime": "eu-mdr", "report_type": "initial", "reference": "BfArM-1"}
    assert call(pipeline, "POST", f"/v1/incidents/{iid}/reports", json=report).status_code == 200

    async def mdr_resolved() -> bool:
        now = active(pipeline, iid)
        return ("IncidentReportOverdue", "eu-mdr") not in now and ("IncidentReportOverdue", "eu-ai-act") in now

    await wait_until(mdr_resolved, 60, "the MDR overdue alert to resolve while the AI Act's stays")
    report = {"regime": "eu-ai-act", "report_type": "combined_initial_final", "reference": "AI-1"}
    assert call(pipeline, "POST", f"/v1/incidents/{iid}/reports", json=report).status_code == 200

    async def none_left() -> bool:
        return not active(pipeline, iid)

    await wait_until(none_left, 60, "every alert of the incident to resolve")


async def test_a_missed_escalation_alert_resolves_when_its_candidate_is_triaged(
    pipeline: Pipeline, db, tmp_path: Path
) -> None:
    registry = [e for e in hospital_events(6, seed=808) if e["event_type"].startswith("Model")]
    await register(pipeline, db, registry)
    chat = next(e for e in hospital_events(40, seed=911)
                if e.get("model_id") == "symptom-chat" and e["event_type"] == "InferenceMade")  # fmt: skip
    chat |= {"event_id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC).isoformat(),
             "patient_facing": {"disclaimer_shown": True, "emergency_detected": False, "escalated": False}}  # fmt: skip
    outcome = {
        "event_type": "OutcomeObserved", "event_id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC).isoformat(),
        "inference_id": chat["event_id"], "model_id": "symptom-chat", "observed_at": datetime.now(UTC).isoformat(),
        "label": "emergency", "critical_condition": True, "source": "follow_up", "emergency": True,
    }  # fmt: skip
    s = pipeline.settings
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        for event in (chat, outcome):
            fields = dict(event)
            await emitter.emit(fields.pop("event_type"), **fields)

    iid = str(incident_id_for("missed_escalation", uuid.UUID(chat["event_id"])))

    async def paged() -> bool:
        return ("EscalationMissed", "") in active(pipeline, iid)

    await wait_until(paged, 60, "the EscalationMissed alert in Alertmanager")
    triage = {"harm": "serious_deterioration", "causality": "probable", "expected": False, "rationale": "r"}
    assert call(pipeline, "POST", f"/v1/incidents/{iid}/triage", json=triage).status_code == 200

    async def ended() -> bool:
        return ("EscalationMissed", "") not in active(pipeline, iid)

    await wait_until(ended, 60, "the EscalationMissed alert to resolve after triage")
