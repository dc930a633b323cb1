"""Writes the quarterly regulatory export (see vigil/export.py) from the event store."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.progress import TaskID
from sqlalchemy.ext.asyncio import AsyncEngine

from services.model_card import model_card
from services.models import oversight, performance
from services.progress import progress_bar
from services.rendering.model_card import markdown
from services.rendering.quarterly_pdf import render_quarterly_pdf
from services.store import reads
from services.store.event_store import EventStore
from vigil.export import SIGNALS, Period, counts_by_model, signal_row
from vigil.footprint import Footprint, footprint
from vigil.policy import Policy
from vigil.registry import UnknownModel
from vigil_runtime.database import engine_for
from vigil_runtime.settings import Settings

Progress = Callable[[str, int, int | None], None]  # step, done, total
INCIDENT_COLUMNS = ["incident_id", "model_id", "status", "harm", "reportable", "aware_at", "next_due_at", "overdue"]


class ChainBroken(RuntimeError):
    """The store's hash chain does not verify: an export would certify altered records."""


async def write_export(
    engine: AsyncEngine, policy: Policy, period: Period, out: Path, progress: Progress, now: datetime
) -> Path:
    start, end = period.start, period.end
    folder = out / f"vigil-export-{period.name}"
    folder.mkdir(parents=True, exist_ok=True)
    store = EventStore(engine)

    total = await store.head_seq()
    checked, problem = await store.verify(
        lambda n: progress("verifying the hash chain", n, total) if n % 500 == 0 else None
    )
    if problem is not None:
        raise ChainBroken(f"the event store's chain is broken at {problem}; not exporting")
    progress("verifying the hash chain", checked, total)

    async with engine.connect() as conn:
        stored = reads.InPeriod(conn, start, end)
        count = await stored.count()
        head = await reads.head(conn)
        written = 0
        with open(folder / "events.jsonl", "w", encoding="utf-8") as f:
            async for row in stored.chain():
                line = {"seq": row.seq, "recorded_at": row.recorded_at.isoformat(), "prev_hash": row.prev_hash,
                        "hash": row.hash, "event": json.loads(row.body)}  # fmt: skip
                f.write(json.dumps(line) + "\n")
                written += 1
                if written % 1000 == 0:
                    progress("writing events", written, count)
        progress("writing events", written, count)
        signals = [signal_row(body) for body in await stored.bodies(SIGNALS)]
        by_model = counts_by_model(await stored.types_by_model())
        incident_rows = [i.model_dump(include=set(INCIDENT_COLUMNS)) for i in await stored.incidents()]
        usage = await stored.usage()
        letters = await stored.dead_letters()

    _csv(
        folder / "signals.csv",
        signals,
        ["occurred_at", "event_type", "model_id", "model_version", "detail", "event_id"],
    )
    _csv(folder / "incidents.csv", incident_rows, INCIDENT_COLUMNS)
    performance_reports: dict[str, dict[str, Any]] = {}
    oversight_reports: dict[str, dict[str, Any]] = {}
    emitting = sorted(m for m in by_model if m != "(none)" and "InferenceMade" in by_model[m])
    for done, model_id in enumerate(emitting):
        progress("performance and oversight per model", done, len(emitting))
        try:
            found = await performance(engine, policy, model_id, None, [], None, end)
            performance_reports[model_id] = found.model_dump(mode="json")
            # As of now: an output of a period still running may yet be reviewed in time.
            reviewed = await oversight(
                engine, policy, model_id, None, "deployment", period.days, min(end, now), until=end
            )
            oversight_reports[model_id] = reviewed.model_dump(mode="json")
        except UnknownModel as error:  # its inferences are in events.jsonl; its label set is unknown
            performance_reports[model_id] = oversight_reports[model_id] = {"unregistered": str(error)}
    progress("performance and oversight per model", len(emitting), len(emitting))
    (folder / "performance.json").write_text(json.dumps(performance_reports, indent=2) + "\n")
    (folder / "oversight.json").write_text(json.dumps(oversight_reports, indent=2) + "\n")
    footprints: dict[str, Footprint] = {}
    for used in usage:
        grid = policy.for_model(used.model_id).footprint.grid_g_co2e_per_kwh
        footprints[used.model_id] = footprint(
            used.inferences, used.energy_reported, used.energy_wh, used.tokens_in, used.tokens_out, grid
        )
    measured = {model_id: f.model_dump(mode="json") for model_id, f in footprints.items()}
    (folder / "footprint.json").write_text(json.dumps(measured, indent=2) + "\n")
    cards = await _write_cards(engine, policy, folder, end if end < now else None, now, progress)
    generated_at = now.isoformat()
    chain = {"verified": checked, "head_seq": head.seq if head else 0, "head_hash": head.hash if head else ""}
    pdf = render_quarterly_pdf(
        period, generated_at, by_model, signals, incident_rows, chain, oversight_reports, footprints
    )
    (folder / "summary.pdf").write_bytes(pdf)
    files = ["events.jsonl", "signals.csv", "incidents.csv", "performance.json", "oversight.json", "footprint.json",
             "summary.pdf", *cards]  # fmt: skip
    manifest = {
        "quarter": period.name if period.quarterly else None,
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "generated_at": generated_at,
        "chain": chain,
        "events_in_period": written,
        "dead_letters_by_reason": {kind: n for kind, n in letters},
        "files": {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in files},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


async def _write_cards(
    engine: AsyncEngine, policy: Policy, folder: Path, as_of: datetime | None, now: datetime, progress: Progress
) -> list[str]:
    """Each registered model's live card as of the period's end, as JSON and Markdown (cards/)."""
    async with engine.connect() as conn:
        models = sorted(await reads.registry(conn, as_of=as_of))
    (folder / "cards").mkdir(exist_ok=True)
    written = []
    for done, model_id in enumerate(models):
        progress("model cards", done, len(models))
        card = await model_card(engine, policy, model_id, None, as_of, now)
        # A model_id is any text: only letters, digits, '-', '_' and '.' go into a file name.
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", model_id).lstrip(".") or "_"
        for name, text in ((f"cards/{stem}.json", card.model_dump_json(indent=2) + "\n"),
                           (f"cards/{stem}.md", markdown(card))):  # fmt: skip
            (folder / name).write_text(text, encoding="utf-8")
            written.append(name)
    progress("model cards", len(models), len(models))
    return written


def _csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


async def run_export(settings: Settings, policy: Policy, period: Period, out: Path, now: datetime) -> Path:
    """`write_export` with a progress bar per step."""
    engine = engine_for(settings)
    tasks: dict[str, TaskID] = {}
    try:
        with progress_bar() as bar:

            def progress(step: str, done: int, total: int | None) -> None:
                if step not in tasks:
                    tasks[step] = bar.add_task(step, total=total)
                bar.update(tasks[step], completed=done, total=total)

            return await write_export(engine, policy, period, out, progress, now)
    finally:
        await engine.dispose()
