"""The demo's incident scenario, driven through the API as a safety officer would."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from services.store import reads
from vigil.events import AlertRaised
from vigil.incidents import latest_awareness_overdue
from vigil_hospital import Hospital, missed_chest_pain
from vigil_runtime.settings import Settings


async def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the demo waited {seconds:.0f} s for {what}")
        await asyncio.sleep(0.5)
    return value


async def incident_scenario(
    settings: Settings,
    engine: AsyncEngine,
    emitter,
    officer_token: str,
    out: Path,
    console: Console,
) -> list[Path]:
    api = httpx.AsyncClient(
        base_url=f"http://{settings.api_host}:{settings.api_port}",
        headers={"Authorization": f"Bearer {officer_token}"},
        timeout=30,
    )
    now = datetime.now(UTC)

    # 1. The chatbot misses chest pain; the follow-up finds an emergency → an incident candidate.
    inference, outcome = missed_chest_pain(Hospital(seed=99, start=now), now - timedelta(hours=6))
    for event in (inference, outcome):
        await emitter.emit(event.pop("event_type"), **event)
    await emitter.flush()

    async def candidate() -> str | None:
        async with engine.connect() as conn:
            found = await reads.candidates_naming(conn, inference["event_id"])
            return str(found[0].incident_id) if found else None

    iid = await wait_for(candidate, 90, "the missed-escalation candidate")
    console.print(f"[bold]\\[demo][/bold] missed emergency escalation → incident candidate {iid}")

    # 2. The safety officer triages it, decides it is reportable, and files the initial MIR.
    triage = {
        "harm": "serious_deterioration",
        "causality": "probable",
        "expected": False,
        "rationale": "Chest pain with self-care advice; acute coronary syndrome confirmed five hours later.",
    }
    (await api.post(f"/v1/incidents/{iid}/triage", json=triage)).raise_for_status()
    decision = {"reportable": True, "rationale": "Unanticipated serious deterioration, probable causal link."}
    decided = (await api.post(f"/v1/incidents/{iid}/reportability", json=decision)).raise_for_status().json()
    for clock in decided["clocks"]:
        console.print(
            f"[bold]\\[demo][/bold] clock {clock['regime']} ({clock['citation']}): due before {clock['due_at']}"
        )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for render in ("pdf", "json"):
        response = await api.get(f"/v1/incidents/{iid}/report", params={"format": "mir", "render": render})
        path = out / f"mir-initial-{iid}.{render}"
        path.write_bytes(response.raise_for_status().content)
        written.append(path)

    # 3. A radiologist's report that nobody triages: its clocks have run out. How long ago that is
    # depends on the weekday and the holidays, so the regulatory core is asked.
    overdue = {
        "model_id": "mammo-screen",
        "model_version": "2.3.0",
        "harm": "temporary",
        "description": "Recall for a missed lesion flagged late by the model; biopsy delayed by two weeks.",
        "country": "DE",
        "aware_at": latest_awareness_overdue(now, "DE").isoformat(),
        "reporter_role": "radiologist",
    }
    left = (await api.post("/v1/incidents", json=overdue)).raise_for_status().json()["incident_id"]

    async def paged() -> list[dict]:
        alerts = (await httpx.AsyncClient().get(f"{settings.alertmanager_url}/api/v2/alerts")).json()
        ours = [a for a in alerts if a["labels"].get("incident_id") in (iid, left)]
        overdue = any(a["labels"]["alertname"] == "IncidentReportOverdue" for a in ours)
        return ours if overdue else []

    active = await wait_for(paged, 90, "the overdue incident to page on-call through Alertmanager")
    # Every alert the two incidents raised, as recorded, and whether Alertmanager still holds it: the
    # missed escalation's ended when the demo's safety officer triaged its candidate.
    async with engine.connect() as conn:
        raised = [a for a in await reads.of_type(conn, AlertRaised) if a.labels.get("incident_id") in (iid, left)]
    latest = {(a.alert_name, a.labels["incident_id"], a.labels.get("regime")): a for a in raised}
    paging = {(a["labels"]["alertname"], a["labels"]["incident_id"], a["labels"].get("regime")) for a in active}
    table = Table(title="Incident alerts (routed to on-call / safety team through Alertmanager)")
    for column in ("alert", "severity", "incident", "in Alertmanager", "summary"):
        table.add_column(column)
    for key, a in latest.items():
        state = "active" if key in paging else ("resolved" if a.resolved else "sent")
        table.add_row(a.alert_name, a.severity, key[1][:8], state, a.summary)
    console.print(table)

    listed = (await api.get("/v1/incidents")).raise_for_status().json()
    inbox = Table(title="Incident inbox, most urgent first")
    for column in ("incident", "model", "status", "harm", "next due", "overdue"):
        inbox.add_column(column)
    for row in listed[:8]:
        inbox.add_row(
            row["incident_id"][:8], row["model_id"], row["status"], row["harm"] or "—",
            row["next_due_at"] or "—", "[red]yes[/red]" if row["overdue"] else "no",
        )  # fmt: skip
    console.print(inbox)
    await api.aclose()
    return written
