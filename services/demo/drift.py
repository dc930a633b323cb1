"""The demo's drift episode: the rural site's new scanner drifts mammo-screen's inputs, then it is
recalibrated. Shows the DriftDetected / DriftResolved events and their alerts as recorded."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from services.demo.incidents import wait_for
from services.store import reads
from vigil.events import DriftDetected, DriftResolved

MODEL = "mammo-screen"


async def drift_episode(engine: AsyncEngine, started: datetime, console: Console) -> list[DriftDetected]:
    async def recorded() -> list[DriftDetected]:
        async with engine.connect() as conn:
            found = await reads.of_type(conn, DriftDetected, DriftResolved, model_id=MODEL, recorded_since=started)
        return found if any(isinstance(e, DriftResolved) for e in found) else []

    found = await wait_for(recorded, 90, "the drift episode to be detected and resolved")
    table = Table(title=f"Drift of {MODEL}: the rural site's new scanner, then its recalibration")
    for column in ("event", "feature", "window", "method", "score", "threshold", "values (window / reference)"):
        table.add_column(column)
    for e in found:
        table.add_row(
            e.event_type, e.feature, e.window, e.method, f"{e.score:.3g}", f"{e.threshold:g}",
            f"{e.current_size} / {e.reference_size}",
        )  # fmt: skip
    console.print(table)
    return found
