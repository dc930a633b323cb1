"""The demo's estimated performance: mammo-screen's pathology comes back days after the screen, so
the demo holds it back while the other steps run. Its validation study calibrates the scores
(uploaded as the version's reference), the screens still waiting are estimated (CBPE), then the
pathology arrives and the realised figures take the estimate's place, with how far off it was."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from services.models import ModelEstimate, performance_estimate
from services.performance_view import print_model_estimate
from services.store.event_store import EventStore
from vigil.performance import name_of
from vigil.policy import Policy
from vigil_hospital import VERSIONS, Hospital

MODEL = "mammo-screen"


async def upload_validation_study(api_url: str, emitter_token: str, hospital: Hospital, console: Console) -> None:
    """The vendor's premarket validation set as mammo-screen's calibration reference, over the API."""
    rows = hospital.validation_study()
    body = "score,truth\n" + "".join(f"{score:.4f},{truth}\n" for score, truth in rows)
    version = VERSIONS[MODEL]
    async with httpx.AsyncClient() as client:
        answer = await client.put(
            f"{api_url}/v1/models/{MODEL}/versions/{version}/calibration-reference",
            params={"label": "malignant"},
            content=body.encode(),
            headers={"Authorization": f"Bearer {emitter_token}", "Content-Type": "text/csv"},
        )
    answer.raise_for_status()
    fit = answer.json()
    console.print(
        f"[bold]\\[demo][/bold] {MODEL} {version}'s validation study ({fit['reference_size']:,} screens) calibrates "
        f"its estimated performance: held-out ECE {fit['calibration_ece']:.3f}"
    )


async def estimate_ahead_of_pathology(
    engine: AsyncEngine,
    policy: Policy,
    pathology: list[str],
    send_pathology: Callable[[], Awaitable[None]],
    console: Console,
) -> None:
    """The estimate while every screen waits for its pathology; then the pathology, and the realised figures."""
    before = await _estimate(engine, policy)
    table = Table(title=f"ESTIMATED performance of {MODEL} (CBPE) before any pathology is back")
    for column in ("version", "subgroup", "screens waiting", "sensitivity est. (95%)", "specificity est."):
        table.add_column(column)
    for each in (v for v in before.versions if set(v.subgroup) <= {"site"}):
        sens, spec = (each.overall.metrics[m] for m in ("sensitivity", "specificity")) if each.overall else (None, None)
        table.add_row(
            each.model_version, name_of(tuple(each.subgroup.items())),
            str(each.overall.n) if each.overall else "—",
            each.not_estimable or ("—" if sens is None else f"{sens.value:.3f} ({sens.low:.3f}–{sens.high:.3f})"),
            "—" if spec is None else f"{spec.value:.3f}",
        )  # fmt: skip
    console.print(table)

    await send_pathology()
    store, deadline = EventStore(engine), time.monotonic() + 120
    while await store.count_of(pathology) < len(pathology) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    console.print(f"[bold]\\[demo][/bold] the pathology of {len(pathology):,} screens is back (7 days after each)")
    after = await _estimate(engine, policy)
    print_model_estimate(console, after.model_copy(update={"versions": [v for v in after.versions if not v.subgroup]}))
    console.print(
        "The realised figures replace the estimate as the pathology arrives; the rest of the screens never get one "
        f"and stay estimated (`vigil performance estimate --model {MODEL}`)."
    )


async def _estimate(engine: AsyncEngine, policy: Policy) -> ModelEstimate:
    return await performance_estimate(engine, policy, MODEL, None, None, datetime.now(UTC), depth=1)
