"""The demo's guideline change: part-way through the stream the hospital adopts an update of its
triage protocol that ed-triage 1.5.0 predates. The audit lists the recommendations to re-review,
and the care team's list of cases is written as CSV."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from services.demo.incidents import wait_for
from services.guidelines_view import print_audit, write_cases
from services.store.event_store import EventStore
from vigil.guidelines import GuidelineAudit
from vigil_runtime.settings import Settings

GUIDELINE = "triage-protocol-2026-2"


async def guideline_change(
    settings: Settings, engine: AsyncEngine, emitter, officer_token: str, stream_start: datetime, out: Path,
    console: Console,
) -> Path:  # fmt: skip
    effective = stream_start + timedelta(hours=20)
    event_id = await emitter.emit(
        "GuidelineChanged", event_id=str(uuid.uuid4()), occurred_at=effective.isoformat(), guideline_id=GUIDELINE,
        title="Triage protocol 2026.2: chest pain with SpO2 below 94 % is urgent", effective_at=effective.isoformat(),
        affected_use_cases=["ed_triage"], summary="Adopted by the emergency department on the date it takes effect.",
    )  # fmt: skip
    await emitter.flush()

    async def recorded() -> bool:
        return await EventStore(engine).count_of([event_id]) == 1

    await wait_for(recorded, 60, "the guideline change to be recorded")
    async with httpx.AsyncClient(
        base_url=f"http://{settings.api_host}:{settings.api_port}",
        headers={"Authorization": f"Bearer {officer_token}"},
        timeout=60,
    ) as api:
        answer = await api.get(f"/v1/guidelines/{GUIDELINE}/audit", params={"lookback": "30d"})
        answer.raise_for_status()
    result = GuidelineAudit.model_validate(answer.json())
    print_audit(console, result)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"guideline-{GUIDELINE}-cases.csv"
    write_cases(path, result.cases)
    return path
