"""Incidents end to end: HTTP → Kafka → worker and recorder → event store → reports, clocks, alerts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jsonschema
import pytest
from sqlalchemy import text
from vigil_sdk import AsyncEmitter

from services.store import reads
from tests.conftest import TOKENS, Pipeline
from tests.integration.helpers import hospital_events, records_on, wait_recorded, wait_until
from vigil.events import EVENT_TYPES, SURVEILLANCE_TOPIC, TrendDetected
from vigil.incidents import latest_awareness_overdue

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def call(pipeline: Pipeline, method: str, path: str, role: str = "safety_officer", **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKENS[role]}", **kwargs.pop("headers", {})}
    return httpx.request(method, pipeline.api_url + path, headers=headers, timeout=30, **kwargs)


def new_incident(aware_at: datetime, **changes) -> dict:
    return {
        "model_id": "symptom-chat",
        "model_version": "0.9.1",
        "harm": "serious_deterioration",
        "description": "Patient reported chest pain; the chatbot advised self-care and did not escalate.",
        "country": "DE",
        "aware_at": aware_at.isoformat(),
        **changes,
    }


async def register(pipeline: Pipeline, db, registry: list[dict]) -> None:
    """Incidents name registered models: wait until the registry events are recorded."""
    assert call(pipeline, "POST", "/v1/events", role="emitter", json=registry).status_code == 202
    await wait_recorded(db, [e["event_id"] for e in registry], 30, "the model registry events")


async def events_of_type(db, event_type: str, incident_id: str) -> list[dict]:
    async with db.connect() as conn:
        found = await reads.of_type(conn, EVENT_TYPES[event_type])
    return [e.model_dump(mode="json") for e in found if incident_id in e.model_dump_json()]


async def test_incident_lifecycle_reports_and_point_in_time(pipeline: Pipeline, db, tmp_path: Path) -> None:
    # Model card data for the report comes from the registry events.
    registry = [e for e in hospital_events(6, seed=808) if e["event_type"].startswith("Model")]
    await register(pipeline, db, registry)

    created = call(pipeline, "POST", "/v1/incidents", json=new_incident(datetime.now(UTC) - timedelta(hours=2)))
    assert created.status_code == 201, created.text
    incident = created.json()
    iid = incident["incident_id"]
    assert incident["status"] == "reported"
    assert {c["regime"] for c in incident["clocks"]} == {"eu-mdr", "eu-ai-act"}
    assert all(c["provisional"] for c in incident["clocks"])
    before_triage = datetime.now(UTC)
    time.sleep(1.1)

    triage = {"harm": "serious_deterioration", "causality": "probable", "expected": False, "rationale": "missed ACS"}
    triaged = call(pipeline, "POST", f"/v1/incidents/{iid}/triage", json=triage)
    assert triaged.status_code == 200, triaged.text
    assert triaged.json()["history"][-1]["by"] == "dr-meyer"

    decided = call(pipeline, "POST", f"/v1/incidents/{iid}/reportability", json={"reportable": True, "rationale": "r"})
    assert decided.status_code == 200
    clocks = {c["regime"]: c for c in decided.json()["clocks"]}
    assert clocks["eu-mdr"]["category"] == "death_or_serious_deterioration"
    assert clocks["eu-ai-act"]["category"] == "serious_incident"

    # Refusals: a wrong transition names what is allowed; nothing changes.
    again = call(pipeline, "POST", f"/v1/incidents/{iid}/triage", json=triage)
    assert again.status_code == 409 and "allowed: SubmitReport, Close" in again.json()["detail"]
    assert call(pipeline, "POST", f"/v1/incidents/{uuid.uuid4()}/triage", json=triage).status_code == 404
    assert call(pipeline, "POST", f"/v1/incidents/{iid}/triage", role="auditor", json=triage).status_code == 403
    future = call(pipeline, "POST", "/v1/incidents", json=new_incident(datetime.now(UTC) + timedelta(days=1)))
    assert future.status_code == 422 and "in the future" in future.text
    bad_date = call(
        pipeline, "POST", "/v1/incidents", json={**new_incident(datetime.now(UTC)), "aware_at": "2026-02-30"}
    )
    assert bad_date.status_code == 422

    submitted = call(
        pipeline,
        "POST",
        f"/v1/incidents/{iid}/reports",
        json={"regime": "eu-mdr", "report_type": "initial", "reference": "BfArM-2026-0042"},
    )
    assert submitted.status_code == 200 and submitted.json()["status"] == "reporting"

    # As of before triage: the untriaged state, rebuilt from what was recorded by then.
    past = call(pipeline, "GET", f"/v1/incidents/{iid}", role="auditor", params={"as_of": before_triage.isoformat()})
    assert past.status_code == 200 and past.json()["status"] == "reported" and past.json()["triage"] is None
    assert call(pipeline, "GET", f"/v1/incidents/{iid}", role="auditor").json()["status"] == "reporting"

    mir = call(pipeline, "GET", f"/v1/incidents/{iid}/report", role="auditor", params={"format": "mir"})
    assert mir.status_code == 200
    jsonschema.validate(mir.json(), json.loads((ROOT / "schemas/MirReport.v1.json").read_text()))
    assert mir.json()["device"]["name"] == "AskNurse"
    assert mir.json()["administrative"]["competent_authority_reference"] == "BfArM-2026-0042"

    pdf = call(pipeline, "GET", f"/v1/incidents/{iid}/report", params={"format": "mir", "render": "pdf"})
    assert pdf.headers["content-type"] == "application/pdf"
    (tmp_path / "mir.pdf").write_bytes(pdf.content)
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(tmp_path / "mir.pdf"), str(tmp_path / "page")], check=True)
    assert list(tmp_path.glob("page*.png"))
    pdf_text = subprocess.run(["pdftotext", str(tmp_path / "mir.pdf"), "-"], capture_output=True, text=True).stdout
    assert iid in pdf_text and "MDR Art. 87(5)" in pdf_text

    # Every read by a person was recorded, with who and as of when.
    async def views() -> list[dict]:
        found = await events_of_type(db, "IncidentViewed", iid)
        return found if len(found) >= 4 else []

    viewed = await wait_until(views, 30, "access audit events")
    assert {v["by"] for v in viewed} == {"audit-kim", "dr-meyer"}
    assert any(v["as_of"] for v in viewed)


def test_incidents_can_be_reported_from_the_cli(pipeline: Pipeline) -> None:
    aware = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    args = [
        "incident",
        "new",
        "--model",
        "symptom-chat",
        "--version",
        "0.9.1",
        "--harm",
        "temporary",
        "--country",
        "FR",
    ]
    args += ["--description", "d"]
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", *args, "--aware", aware],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "reported; status reported" in result.stderr and "MDR Art. 87(4)" in result.stderr
    refused = subprocess.run(
        [sys.executable, "-m", "services.cli", *args, "--aware", "2999-01-01T00:00Z"],
        capture_output=True, text=True, env=os.environ, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "in the future" in refused.stderr


async def test_an_untriaged_incident_goes_overdue_and_pages(pipeline: Pipeline, db) -> None:
    # Six days back is overdue on most days, not all (the Wednesday after Easter is not): ask the core.
    aware = latest_awareness_overdue(datetime.now(UTC), "DE")
    created = call(pipeline, "POST", "/v1/incidents", json=new_incident(aware))
    assert created.status_code == 201
    iid = created.json()["incident_id"]

    async def overdue_alert() -> list[dict]:
        alerts = [a for a in await events_of_type(db, "AlertRaised", iid) if a["alert_name"] == "IncidentReportOverdue"]
        return alerts if len(alerts) == 2 else []

    alerts = await wait_until(overdue_alert, 60, "overdue alerts for both regimes")
    assert {a["labels"]["regime"] for a in alerts} == {"eu-mdr", "eu-ai-act"}
    assert all(a["severity"] == "critical" for a in alerts)
    await asyncio.sleep(3 * pipeline.settings.clock_interval)  # three more ticks of the clocks
    sent = [e for e in await records_on(pipeline.settings, SURVEILLANCE_TOPIC)
            if e["event_type"] == "ReportOverdue" and e["incident_id"] == iid]  # fmt: skip
    assert len(sent) == 2, "each overdue clock is announced once, not on every tick"

    async def projected() -> bool:
        async with db.connect() as conn:
            return any(i.overdue for i in await reads.inbox(conn) if str(i.incident_id) == iid)

    await wait_until(projected, 30, "the projection to show the incident overdue")

    def paged() -> list[dict]:
        active = httpx.get(f"{pipeline.settings.alertmanager_url}/api/v2/alerts").json()
        return [a for a in active if a["labels"].get("incident_id") == iid]

    async def in_alertmanager() -> list[dict]:
        return paged()

    routed = await wait_until(in_alertmanager, 60, "the alert in Alertmanager")
    assert routed[0]["labels"]["alertname"] == "IncidentReportOverdue"
    assert routed[0]["labels"]["severity"] == "critical"
    assert not any(k.startswith("patient") for k in routed[0]["labels"])


async def test_a_missed_emergency_escalation_raises_a_candidate(pipeline: Pipeline, db, tmp_path: Path) -> None:
    chat = next(
        e
        for e in hospital_events(40, seed=909)
        if e.get("model_id") == "symptom-chat" and e["event_type"] == "InferenceMade"
    )
    chat["patient_facing"] = {"disclaimer_shown": True, "emergency_detected": False, "escalated": False}
    outcome = {
        "event_type": "OutcomeObserved",
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC).isoformat(),
        "inference_id": chat["event_id"],
        "model_id": "symptom-chat",
        "observed_at": datetime.now(UTC).isoformat(),
        "label": "emergency",
        "critical_condition": True,
        "source": "follow_up",
        "emergency": True,
    }
    s = pipeline.settings
    async with AsyncEmitter(kafka=s.kafka_bootstrap, topic_prefix=s.topic_prefix, spool_dir=tmp_path) as emitter:
        # The outcome arrives first: the join works in either order.
        for event in (outcome, chat):
            fields = dict(event)
            await emitter.emit(fields.pop("event_type"), **fields)

    async def candidate() -> list[dict]:
        async with db.connect() as conn:
            return [i.model_dump(mode="json") for i in await reads.candidates_naming(conn, chat["event_id"])]

    found = await wait_until(candidate, 60, "an incident candidate")
    assert found[0]["status"] == "candidate"
    # The alert travels on alert.v1: it may be recorded a moment after the candidate.
    alerts = await wait_until(
        lambda: events_of_type(db, "AlertRaised", str(found[0]["incident_id"])), 30, "the EscalationMissed alert"
    )
    assert alerts[0]["alert_name"] == "EscalationMissed"


async def test_replay_rebuilds_an_identical_projection(pipeline: Pipeline, db) -> None:
    async def snapshot() -> list[tuple]:
        async with db.connect() as conn:
            # The whole projection, every column, as the database holds it.
            return [tuple(r) for r in await conn.execute(text("SELECT * FROM incidents ORDER BY incident_id"))]

    async def some_incidents() -> bool:
        return bool(await snapshot())

    await wait_until(some_incidents, 30, "incidents to replay")
    time.sleep(2)  # let in-flight events settle
    before = await snapshot()
    async with db.begin() as conn:
        await conn.execute(text("DELETE FROM incidents"))
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "replay"], env=os.environ, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert await snapshot() == before


async def test_a_rise_in_non_serious_incidents_raises_a_trend(pipeline: Pipeline, db) -> None:
    now = datetime.now(UTC)
    week = now - timedelta(days=now.weekday())
    mild = {"harm": "temporary", "causality": "possible", "expected": True, "rationale": "self-limiting"}
    await register(
        pipeline, db, [{**hospital_events(1, seed=1)[0], "event_id": str(uuid.uuid4()), "model_id": "trend-model"}]
    )
    # One a week for four weeks, then six this week, for a model of its own.
    awareness = [week - timedelta(weeks=i, hours=-1) for i in range(1, 5)] + [
        week + timedelta(minutes=i) for i in range(6)
    ]
    awareness = [min(a, now - timedelta(minutes=1)) for a in awareness]
    for aware in awareness:
        created = call(
            pipeline, "POST", "/v1/incidents", json=new_incident(aware, model_id="trend-model", harm="temporary")
        )
        assert created.status_code == 201, created.text
        triaged = call(pipeline, "POST", f"/v1/incidents/{created.json()['incident_id']}/triage", json=mild)
        assert triaged.status_code == 200, triaged.text

    async def trend() -> list[dict]:
        async with db.connect() as conn:
            found = await reads.of_type(conn, TrendDetected, model_id="trend-model")
            return [t.model_dump(mode="json") for t in found]

    [detected] = await wait_until(trend, 30, "TrendDetected")
    assert detected["count"] == 6 and detected["baseline_weeks"] == 4 and detected["p_value"] < 0.01


async def test_a_corrective_action_and_imdrf_codes_fill_the_mir(pipeline: Pipeline, db) -> None:
    registry = [e for e in hospital_events(6, seed=808) if e["event_type"].startswith("Model")]
    await register(pipeline, db, registry)
    created = call(pipeline, "POST", "/v1/incidents", json=new_incident(datetime.now(UTC) - timedelta(hours=3),
                                                                         incident_date="2026-01-10"))  # fmt: skip
    assert created.status_code == 201, created.text
    iid = created.json()["incident_id"]
    triage = {"harm": "serious_deterioration", "causality": "probable", "expected": False, "rationale": "missed ACS",
              "device_problem_codes": ["A0601"], "health_effect_codes": ["E0123", "F0801"]}  # fmt: skip
    bad = call(pipeline, "POST", f"/v1/incidents/{iid}/triage", json={**triage, "device_problem_codes": ["X1"]})
    assert bad.status_code == 422 and "device_problem_codes" in bad.text
    assert call(pipeline, "POST", f"/v1/incidents/{iid}/triage", json=triage).status_code == 200
    decided = call(pipeline, "POST", f"/v1/incidents/{iid}/reportability", json={"reportable": True, "rationale": "r"})
    assert decided.status_code == 200

    action = {"kind": "fsca", "title": "Escalate every chest pain", "description": "rule added before the model",
              "model_id": "symptom-chat", "model_versions": ["0.9.1"], "deployments": ["web"],
              "incident_ids": [iid]}  # fmt: skip
    for wrong, words in (({"model_id": "no-such-model"}, "unknown model"),
                         ({"incident_ids": [str(uuid.uuid4())]}, "no incident")):  # fmt: skip
        refused = call(pipeline, "POST", "/v1/corrective-actions", json={**action, **wrong})
        assert refused.status_code == 422 and words in refused.text, refused.text
    assert call(pipeline, "POST", "/v1/corrective-actions", role="auditor", json=action).status_code == 403
    started = call(pipeline, "POST", "/v1/corrective-actions", json=action)
    assert started.status_code == 201, started.text
    aid = started.json()["started"]["action_id"]
    notice = {"reference": "FSN-2026-07", "countries": ["DE"], "summary": "Chest pain now always escalates."}
    assert call(pipeline, "POST", f"/v1/corrective-actions/{uuid.uuid4()}/notices", json=notice).status_code == 404
    assert call(pipeline, "POST", f"/v1/corrective-actions/{aid}/notices", json=notice).status_code == 200
    checked = call(pipeline, "POST", f"/v1/corrective-actions/{aid}/effectiveness",
                   json={"effective": True, "evidence": "no missed escalation in four weeks"})  # fmt: skip
    assert checked.status_code == 200 and checked.json()["checks"][-1]["effective"] is True
    listed = call(pipeline, "GET", "/v1/corrective-actions", role="auditor", params={"incident_id": iid}).json()
    assert [a["started"]["action_id"] for a in listed] == [aid]

    mir = call(pipeline, "GET", f"/v1/incidents/{iid}/report", params={"format": "mir"})
    assert mir.status_code == 200, mir.text
    jsonschema.validate(mir.json(), json.loads((ROOT / "schemas/MirReport.v1.json").read_text()))
    report = mir.json()
    assert report["administrative"]["incident_date"] == "2026-01-10"
    assert report["administrative"]["reportability_known_date"] is not None
    assert report["manufacturer_analysis"]["imdrf_device_problem_codes"] == "A0601"
    assert report["manufacturer_analysis"]["imdrf_health_effect_codes"] == "E0123, F0801"
    assert report["corrective_actions"]["field_safety_notices"] == "FSN-2026-07"
    assert "'Escalate every chest pain'" in report["corrective_actions"]["actions"]
    fda = call(
        pipeline, "GET", f"/v1/incidents/{iid}/report", params={"format": "fda-3500a", "type": "final_non_reportable"}
    )
    assert fda.status_code == 422 and "no final (non-reportable) report" in fda.text

    listing = [sys.executable, "-m", "services.cli", "action", "list", "--model", "symptom-chat", "--json"]
    shown = subprocess.run(listing, env=os.environ, capture_output=True, text=True, check=True)
    assert aid in shown.stdout
