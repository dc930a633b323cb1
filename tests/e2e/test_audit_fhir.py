"""The audit trail as FHIR on the real stack: an incident reported, triaged, read and its report
prepared, and a console sign-in, come back from GET /v1/audit/fhir as a Bundle and from
`vigil export audit-fhir` as NDJSON, every resource valid by fhir.resources and none naming a patient."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from tests.conftest import TOKENS, Pipeline
from tests.e2e.test_incidents import call, events_of_type, new_incident, register
from tests.integration.helpers import hospital_events, wait_until

pytestmark = pytest.mark.integration


async def test_the_audit_trail_comes_out_as_fhir_audit_events(pipeline: Pipeline, db, tmp_path: Path) -> None:
    await register(pipeline, db, [e for e in hospital_events(6, seed=808) if e["event_type"].startswith("Model")])
    since = datetime.now(UTC) - timedelta(seconds=1)
    created = call(pipeline, "POST", "/v1/incidents", json=new_incident(datetime.now(UTC) - timedelta(hours=2)))
    iid = created.json()["incident_id"]
    triage = {"harm": "serious_deterioration", "causality": "probable", "expected": False, "rationale": "r"}
    assert call(pipeline, "POST", f"/v1/incidents/{iid}/triage", json=triage).status_code == 200
    assert call(pipeline, "GET", f"/v1/incidents/{iid}", role="auditor").status_code == 200
    assert call(pipeline, "GET", f"/v1/incidents/{iid}/report", params={"format": "mir"}).status_code == 200
    signed = httpx.post(pipeline.api_url + "/console/sign-in", data={"token": TOKENS["auditor"]})
    assert signed.status_code == 303

    async def all_recorded() -> bool:
        views = await events_of_type(db, "IncidentViewed", iid)
        return len(views) >= 2

    await wait_until(all_recorded, 30, "the reads in the audit trail")

    async def bundle() -> dict:
        answer = call(pipeline, "GET", "/v1/audit/fhir", role="auditor", params={"since": since.isoformat()})
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/fhir+json"
        found = Bundle.model_validate_json(answer.text).model_dump(mode="json", exclude_none=True)
        return found if any(e["resource"]["subtype"][0]["code"] == "110122" for e in found["entry"]) else {}

    found = await wait_until(bundle, 30, "the console sign-in in the trail")
    ours = [e["resource"] for e in found["entry"]
            if any(x["what"]["identifier"]["value"] == iid for x in e["resource"].get("entity", []))]  # fmt: skip
    profiles = sorted(r["meta"]["profile"][0].rsplit(".", 1)[1] for r in ours)
    assert profiles == ["Create", "Read", "Read", "Update"]
    prepared = [r for r in ours if "mir report prepared" in r["entity"][0].get("description", "")]
    assert len(prepared) == 1 and prepared[0]["agent"][0]["who"]["identifier"]["value"] == "dr-meyer"
    login = next(e["resource"] for e in found["entry"] if e["resource"]["subtype"][0]["code"] == "110122")
    assert login["agent"][0]["who"]["identifier"]["value"] == "audit-kim"
    assert "patient" not in str(found).lower()

    out = tmp_path / "audit.ndjson"
    args = ["export", "audit-fhir", "--since", since.isoformat(), "--out", str(out)]
    done = subprocess.run([sys.executable, "-m", "services.cli", *args], env=os.environ, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert {AuditEvent.model_validate_json(line).id for line in lines} >= {r["id"] for r in ours}

    assert (
        call(pipeline, "GET", "/v1/audit/fhir", role="emitter", params={"since": since.isoformat()}).status_code == 403
    )
    assert call(pipeline, "GET", "/v1/audit/fhir", role="auditor").status_code == 422
