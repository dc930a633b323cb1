"""The demo's estimated performance: mammo-screen's pathology comes back days after the screen, so
the demo holds it back while the other steps run. Its validation study calibrates the scores
(uploaded as the version's reference), the screens still waiting are estimated (CBPE): the rural
site's new scanner leaves the model unsure, and its estimate falls below the safety threshold before
any pathology; then the pathology arrives and the realised figures take the estimate's place, with
how far off it was."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from services.demo.incidents import wait_for
from services.models import ModelEstimate, performance_estimate
from services.performance_view import print_model_estimate
from services.store import reads
from services.store.event_store import EventStore
from vigil.events import PerformanceEstimated
from vigil.performance import name_of
from vigil.performance_estimate import VersionEstimate
from vigil.policy import Policy
from vigil_hospital import MODELS, VERSIONS, Hospital

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
    started: datetime,
    pathology: list[str],
    send_pathology: Callable[[], Awaitable[None]],
    console: Console,
) -> None:
    """The estimate while every screen waits for its pathology, and the estimator's warning; then
    the pathology, and the realised figures beside what was estimated for the same screens."""
    before = await _estimate(engine, policy)
    table = Table(title=f"ESTIMATED performance of {MODEL} (CBPE) before any pathology is back")
    for column in ("version", "subgroup", "screens waiting", "sensitivity est. (95%)", "specificity est."):
        table.add_column(column)
    for each in _by_site(before):
        sens, spec = (each.overall.metrics[m] for m in ("sensitivity", "specificity")) if each.overall else (None, None)
        table.add_row(
            each.model_version, name_of(tuple(each.subgroup.items())),
            str(each.overall.n) if each.overall else "—",
            each.not_estimable or ("—" if sens is None else f"{sens.value:.3f} ({sens.low:.3f}–{sens.high:.3f})"),
            "—" if spec is None else f"{spec.value:.3f}",
        )  # fmt: skip
    console.print(table)
    # The estimator's own event of the same screens; below the threshold, its warning alert stands.
    waiting = next((v.overall.n for v in before.versions if not v.subgroup and v.overall), 0)
    made = await wait_for(lambda: _estimated(engine, started, waiting), 90, f"the estimator's estimate of {MODEL}")
    warned = "; alert PerformanceEstimateLow (warning: an estimate, never an incident)" if made.below_threshold else ""
    console.print(f"[bold]\\[demo][/bold] the estimator: {made.summary}{warned}")

    await send_pathology()
    store, deadline = EventStore(engine), time.monotonic() + 120
    while await store.count_of(pathology) < len(pathology) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    console.print(f"[bold]\\[demo][/bold] the pathology of {len(pathology):,} screens is back (7 days after each)")
    after = await _estimate(engine, policy)
    print_model_estimate(console, after.model_copy(update={"versions": [v for v in after.versions if not v.subgroup]}))
    risk_class = next(m["risk_class"] for m in MODELS if m["model_id"] == MODEL)
    threshold = policy.for_model(MODEL).performance.rules(risk_class).threshold
    _print_confirmed(console, before, after, threshold or 0.0)
    console.print(
        "The realised figures replace the estimate as the pathology arrives; the rest of the screens never get one "
        f"and stay estimated (`vigil performance estimate --model {MODEL}`)."
    )


def _print_confirmed(console: Console, before: ModelEstimate, after: ModelEstimate, threshold: float) -> None:
    """Per site: the sensitivity estimated before the pathology, and on the screens that got it
    (in chunks), the estimate beside the realised figure."""
    table = Table(title=f"{MODEL}: sensitivity estimated before the pathology, then realised on the same screens")
    for column in ("site", "estimated before (95%)", "chunk with pathology", "screens", "estimated", "realised",
                   "error"):  # fmt: skip
        table.add_column(column)
    verdicts: list[str] = []
    waiting = {name_of(tuple(v.subgroup.items())): v.overall for v in _by_site(before) if v.subgroup}
    for each in (v for v in _by_site(after) if v.subgroup):
        name = name_of(tuple(each.subgroup.items()))
        earlier = waiting.get(name)
        guessed = earlier.metrics["sensitivity"] if earlier else None
        said = "—" if guessed is None else f"{guessed.value:.3f} ({guessed.low:.3f}–{guessed.high:.3f})"
        for n, test in enumerate(each.backtest):
            estimated, came = test.estimate.metrics["sensitivity"], test.realised["sensitivity"]
            error = test.error["sensitivity"]
            table.add_row(
                name if n == 0 else "", said if n == 0 else "", str(n), str(test.estimate.n),
                "—" if estimated is None else f"{estimated.value:.3f}", "—" if came is None else f"{came:.3f}",
                "—" if error is None else f"{error:+.3f}",
            )  # fmt: skip
        came_in = [c for t in each.backtest if (c := t.realised["sensitivity"]) is not None]
        if guessed is not None and guessed.value < threshold and came_in:
            verdict = "confirmed" if all(c < threshold for c in came_in) else "not confirmed"
            realised = ", ".join(f"{c:.3f}" for c in came_in)
            verdicts.append(
                f"[bold]\\[demo][/bold] {name}: estimated sensitivity {guessed.value:.3f} below "
                f"{threshold:g} before any pathology; {verdict} by the pathology (realised {realised})"
            )
    console.print(table)
    for line in verdicts:
        console.print(line)


def _by_site(found: ModelEstimate) -> list[VersionEstimate]:
    return [v for v in found.versions if set(v.subgroup) <= {"site"}]


async def _estimated(engine: AsyncEngine, started: datetime, outputs: int) -> PerformanceEstimated | None:
    async with engine.connect() as conn:
        found = await reads.of_type(conn, PerformanceEstimated, model_id=MODEL, recorded_since=started)
    return next((e for e in reversed(found) if e.outputs == outputs), None)


async def _estimate(engine: AsyncEngine, policy: Policy) -> ModelEstimate:
    """Over the performance window, as the estimator does (its event then covers the same screens)."""
    window = policy.for_model(MODEL).performance.window_days
    return await performance_estimate(engine, policy, MODEL, None, window, datetime.now(UTC), depth=1)
