"""The demo's oversight episode: the rural ED's night shift stops reviewing triage suggestions and
then acts before review; the imaging vendor's update reports screens on its own. Its transparency
episode: the chatbot stops showing its disclaimer to some patients. The worker's violations as
recorded, each with the alert it raised."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from services.demo.incidents import wait_for
from services.store import reads
from vigil.events import OversightViolation, TransparencyViolation

EXPECTED = {
    ("ed-triage", "review_coverage"),
    ("ed-triage", "acted_before_review"),
    ("mammo-screen", "autonomous_action"),
}


async def oversight_episode(engine: AsyncEngine, started: datetime, console: Console) -> list[OversightViolation]:
    async def recorded() -> list[OversightViolation]:
        async with engine.connect() as conn:
            found = await reads.of_type(conn, OversightViolation, recorded_since=started)
        return found if {(e.model_id, e.kind) for e in found} >= EXPECTED else []

    found = await wait_for(recorded, 90, "the oversight violations of the rural ED and the imaging update")
    table = Table(title="Human oversight: violations raised by the worker (each also an alert)")
    for column in ("model", "kind", "value", "policy", "cases / outputs", "example inference"):
        table.add_column(column)
    for e in found:
        share = e.kind in ("review_coverage", "override_rate")
        table.add_row(
            f"{e.model_id} {e.model_version}", e.kind, f"{e.value:.1%}" if share else f"{e.value:g}",
            f"{'≥' if e.kind == 'review_coverage' else '≤'} {e.limit:.0%}" if share else f"≤ {e.limit:g}",
            f"{e.cases} / {e.of}", str((e.inference_ids or ["-"])[0]),
        )  # fmt: skip
    console.print(table)
    return found


async def transparency_episode(engine: AsyncEngine, started: datetime, console: Console) -> list[TransparencyViolation]:
    """The chatbot's front-end release that dropped the AI disclaimer for French-speaking patients."""

    async def recorded() -> list[TransparencyViolation]:
        async with engine.connect() as conn:
            found = await reads.of_type(conn, TransparencyViolation, recorded_since=started)
        return found if any(e.kind == "disclaimer_shown" for e in found) else []

    found = await wait_for(recorded, 90, "the chatbot's missing disclaimers")
    table = Table(title="Transparency: violations raised by the worker (each also an alert)")
    for column in ("model", "kind", "share", "policy", "without / of", "example inference"):
        table.add_column(column)
    for e in found:
        table.add_row(f"{e.model_id} {e.model_version}", e.kind, f"{e.value:.1%}", f"≥ {e.limit:.0%}",
                      f"{e.cases} / {e.of}", str((e.inference_ids or ["-"])[0]))  # fmt: skip
    console.print(table)
    return found
