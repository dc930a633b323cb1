"""A guideline change on the real broker: a warning for each registered model whose use case it
names, and none for the others; the audit over HTTP, with its errors."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.export import write_export
from services.store import reads
from tests.conftest import RUN, TOKENS, Pipeline
from tests.integration.helpers import wait_recorded, wait_until
from vigil.events import AlertRaised
from vigil.export import span
from vigil.policy import Policy

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


def registered(model_id: str, use_case: str) -> dict:
    return {
        "event_type": "ModelRegistered", "event_id": str(uuid.uuid4()), "occurred_at": NOW.isoformat(),
        "model_id": model_id, "name": model_id, "manufacturer": "Vigil tests", "use_case": use_case,
        "risk_class": "medium", "intended_use": "Exercises the guideline audit.",
    }  # fmt: skip


async def test_a_guideline_change_warns_the_models_it_concerns_and_is_audited(pipeline: Pipeline, db) -> None:
    use_case = f"sepsis_screening_{RUN}"
    concerned, other = registered(f"sepsis-{RUN}", use_case), registered(f"derm-{RUN}", f"dermatology_{RUN}")
    made = {
        "event_type": "InferenceMade", "event_id": str(uuid.uuid4()),
        "occurred_at": (NOW - timedelta(days=1)).isoformat(), "model_id": concerned["model_id"],
        "model_version": "1.0", "deployment": "st-mary", "use_case": use_case,
        "patient_ref": "pt_" + uuid.uuid4().hex[:24], "output": {"label": "sepsis_unlikely"},
    }  # fmt: skip
    guideline = {
        "event_type": "GuidelineChanged", "event_id": str(uuid.uuid4()), "occurred_at": NOW.isoformat(),
        "guideline_id": f"sepsis-3-{RUN}", "title": "Sepsis screening 2026", "effective_at": NOW.isoformat(),
        "affected_use_cases": [use_case],
    }  # fmt: skip
    emitter = {"Authorization": f"Bearer {TOKENS['emitter']}"}
    assert (
        httpx.post(pipeline.api_url + "/v1/events", json=[concerned, other, made], headers=emitter).status_code == 202
    )
    await wait_recorded(db, [concerned["event_id"], other["event_id"], made["event_id"]], 30)
    assert httpx.post(pipeline.api_url + "/v1/events", json=guideline, headers=emitter).status_code == 202

    async def warned() -> list[dict]:
        async with db.connect() as conn:
            found = await reads.of_type(conn, AlertRaised, where={"caused_by": str(guideline["event_id"])})
            return [e.model_dump(mode="json") for e in found]

    [alert] = await wait_until(warned, 30, "the GuidelineChanged alert")
    assert alert["alert_name"] == "GuidelineChanged" and alert["model_id"] == concerned["model_id"]
    assert alert["labels"] == {"guideline_id": guideline["guideline_id"]} and alert["severity"] == "warning"

    reader = {"Authorization": f"Bearer {TOKENS['auditor']}"}
    url = f"{pipeline.api_url}/v1/guidelines/{guideline['guideline_id']}/audit"
    body = httpx.get(url, params={"lookback": "7d"}, headers=reader, timeout=30).json()
    [row] = body["models"]
    assert row["model_id"] == concerned["model_id"] and row["open_under_old_guideline"] == 1
    assert [c["inference_id"] for c in body["cases"]] == [made["event_id"]]
    assert httpx.get(url, params={"lookback": "all"}, headers=reader).status_code == 422
    assert httpx.get(f"{pipeline.api_url}/v1/guidelines/nope/audit", headers=reader).status_code == 404
    assert httpx.get(url, headers=emitter).status_code == 403


async def test_the_export_of_a_running_period_judges_oversight_as_of_now(pipeline: Pipeline, db, tmp_path) -> None:
    model = registered(f"sepsis-export-{RUN}", f"sepsis_export_{RUN}")
    made = {
        "event_type": "InferenceMade", "event_id": str(uuid.uuid4()),
        "occurred_at": (NOW - timedelta(hours=20)).isoformat(), "model_id": model["model_id"],
        "model_version": "1.0", "deployment": "st-mary", "use_case": model["use_case"],
        "patient_ref": "pt_" + uuid.uuid4().hex[:24], "output": {"label": "sepsis_likely"},
    }  # fmt: skip
    emitter = {"Authorization": f"Bearer {TOKENS['emitter']}"}
    assert httpx.post(pipeline.api_url + "/v1/events", json=[model, made], headers=emitter).status_code == 202
    await wait_recorded(db, [model["event_id"], made["event_id"]], 30)
    folder = await write_export(
        db, Policy({}), span(NOW - timedelta(days=2), NOW + timedelta(days=1)), tmp_path, lambda *_: None, NOW
    )
    [everyone] = json.loads((folder / "oversight.json").read_text())[model["model_id"]]["rows"][:1]
    # Made 20 hours ago, with a day to be reviewed: pending, not unreviewed at the period's end.
    assert (everyone["outputs"], everyone["pending"], everyone["unreviewed"]) == (1, 1, 0)
