"""System integrity on the real broker: a deployment that stops sending raises SourceSilent with
an alert in Alertmanager (owner, runbook) while the other keeps sending; its next inference raises
SourceResumed and resolves the alert."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.store import reads
from tests.conftest import RUN, TOKENS, Pipeline
from tests.integration.helpers import wait_until
from vigil.events import AlertRaised, SourceResumed, SourceSilent

pytestmark = pytest.mark.integration
MODEL = "source-probe"  # tests/policy.yml: silent after 4 s (and six times the median gap)


def inference(site: str) -> dict:
    return {
        "event_type": "InferenceMade", "event_id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC).isoformat(),
        "model_id": MODEL, "model_version": f"s-{RUN}", "deployment": site, "use_case": "triage",
        "patient_ref": "pt_" + uuid.uuid4().hex[:24], "output": {"label": "urgent", "score": 0.7},
    }  # fmt: skip


async def test_a_deployment_that_stops_sending_is_reported_and_resumes(pipeline: Pipeline, db) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['emitter']}"}
    quiet, busy = f"quiet-{RUN}", f"busy-{RUN}"

    def send(*sites: str) -> None:
        answer = httpx.post(pipeline.api_url + "/v1/events", json=[inference(s) for s in sites], headers=headers)
        assert answer.status_code == 202, answer.text

    for _ in range(5):  # both send every half second
        send(quiet, busy)
        await asyncio.sleep(0.5)

    async def signals() -> list:
        async with db.connect() as conn:
            return await reads.of_type(conn, SourceSilent, SourceResumed, AlertRaised, model_id=MODEL)

    async def silent() -> list:
        for _ in range(2):  # the busy one keeps sending meanwhile
            send(busy)
            await asyncio.sleep(0.5)
        found = [e for e in await signals() if type(e) is SourceSilent]
        return found

    [event] = await wait_until(silent, 60, "the quiet deployment reported silent")
    assert event.deployment == quiet and event.limit_seconds >= 4
    assert datetime.now(UTC) - event.last_seen < timedelta(minutes=2)

    def paged() -> list[dict]:
        active = httpx.get(f"{pipeline.settings.alertmanager_url}/api/v2/alerts").json()
        return [a for a in active if a["labels"].get("alertname") == "SourceSilent"
                and a["labels"].get("deployment") == quiet]  # fmt: skip

    async def in_alertmanager() -> list[dict]:
        return paged()

    [alert] = await wait_until(in_alertmanager, 60, "the silence in Alertmanager")
    assert alert["labels"]["owner"] == "ml-engineering" and alert["annotations"]["runbook_url"].endswith(
        "/SourceSilent.md"
    )
    assert "why its events stopped" in alert["annotations"]["action"]

    send(quiet)

    async def resumed() -> list:
        found = await signals()
        back = [e for e in found if isinstance(e, SourceResumed)]
        ended = [e for e in found if isinstance(e, AlertRaised) and e.resolved]
        return found if back and ended else []

    found = await wait_until(resumed, 60, "the quiet deployment resumed")
    [back] = [e for e in found if isinstance(e, SourceResumed)]
    assert back.silent_event_id == event.event_id and back.deployment == quiet and back.silent_seconds > 4
    assert not [e for e in found if type(e) is SourceSilent and e.deployment == busy]
