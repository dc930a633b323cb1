"""The demo's drift episode: the rural site's new scanner drifts mammo-screen's inputs, then it is
recalibrated. Shows the DriftDetected / DriftResolved events and their alerts as recorded."""

from __future__ import annotations

import json
from datetime import datetime

from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.demo.incidents import wait_for
from services.recorder.tables import events

MODEL = "mammo-screen"


async def drift_episode(engine: AsyncEngine, started: datetime, console: Console) -> list[dict]:
    async def recorded() -> list[dict]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(events.c.body)
                .where(events.c.event_type.in_(["DriftDetected", "DriftResolved"]))
                .where(events.c.model_id == MODEL)
                .where(events.c.recorded_at >= started)
                .order_by(events.c.seq)
            )
            found = [json.loads(b) for (b,) in rows]
        return found if any(e["event_type"] == "DriftResolved" for e in found) else []

    found = await wait_for(recorded, 90, "the drift episode to be detected and resolved")
    table = Table(title=f"Drift of {MODEL}: the rural site's new scanner, then its recalibration")
    for column in ("event", "feature", "window", "method", "score", "threshold", "values (window / reference)"):
        table.add_column(column)
    for e in found:
        table.add_row(
            e["event_type"], e["feature"], e["window"], e["method"], f"{e['score']:.3g}", f"{e['threshold']:g}",
            f"{e['current_size']} / {e['reference_size']}",
        )  # fmt: skip
    console.print(table)
    return found
