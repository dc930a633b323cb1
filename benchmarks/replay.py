"""P6, replay: `vigil replay` of every projection from a store of 1M events.

    python -m benchmarks.replay [--events 1000000] [--incidents 10000]

The store (database `vigil_bench`, made afresh) holds the demo hospital's events and, among them,
`--incidents` incidents each reported and triaged, written by COPY with their hash chain. The
replay is `vigil replay`'s own function (the incidents projection, the only one, rebuilt in one
transaction). Baseline, in the same run: reading the same incident events' bodies from the store
and `json.loads`-ing them, what any replay has to do. Ratio = replay seconds / baseline seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table
from sqlalchemy import text

from benchmarks.drift import _write_section
from benchmarks.recorder_throughput import bench_database, fresh_store
from services.store.replay import INCIDENT_TYPES, replay_incidents
from vigil.chain import GENESIS, link
from vigil_hospital import Hospital
from vigil_runtime.database import engine_for, migrate
from vigil_runtime.settings import Settings

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # the store's events are dated; the replay does not care when it runs


def incident_events(n: int) -> list[dict]:
    """n incidents, each reported then triaged."""
    out = []
    for i in range(n):
        incident_id, at = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-incident/{i}")), T0 + timedelta(minutes=i)
        common = {"schema_version": 1, "incident_id": incident_id, "occurred_at": at.isoformat()}
        out.append(common | {
            "event_type": "IncidentReported", "event_id": str(uuid.uuid4()), "reporter_role": "nurse",
            "model_id": "ed-triage", "model_version": "1.5.0", "harm": "temporary", "country": "DE",
            "description": "Triage suggestion too low for a patient later admitted.", "aware_at": at.isoformat(),
        })  # fmt: skip
        out.append(common | {
            "event_type": "IncidentTriaged", "event_id": str(uuid.uuid4()), "by": "staff-17", "role": "safety_officer",
            "harm": "temporary", "causality": "possible", "expected": False, "rationale": "Under review.",
        })  # fmt: skip
    return out


def rows(events: int, incidents: int) -> list[tuple]:
    """The store's rows, chained, incidents spread through the hospital's stream."""
    hospital = Hospital(seed=29, start=T0)
    stream = hospital.stream(events)
    mixed: list[dict] = []
    incident_list = incident_events(incidents)
    every = max(1, (events - len(incident_list)) // max(1, len(incident_list)))
    for i in track(range(events - len(incident_list)), description="making the hospital's events"):
        mixed.append(next(stream))
        if i % every == 0 and incident_list:
            mixed.append(incident_list.pop())
    mixed += incident_list
    out, prev = [], GENESIS
    for seq, event in enumerate(mixed, start=1):
        body = json.dumps({"schema_version": 1} | event, sort_keys=True, separators=(",", ":"))
        digest = link(prev, body)
        out.append((seq, uuid.UUID(event["event_id"]), event["event_type"], 1, event.get("model_id"),
                    datetime.fromisoformat(event["occurred_at"]), "bench", 0, seq, body, prev, digest))  # fmt: skip
        prev = digest
    return out


COLUMNS = ["seq", "event_id", "event_type", "schema_version", "model_id", "occurred_at", "topic", "source_partition",
           "source_offset", "body", "prev_hash", "hash"]  # fmt: skip


async def measure(settings: Settings, store_rows: list[tuple]) -> tuple[int, float, float]:
    await fresh_store(settings)
    await asyncio.to_thread(migrate, settings)
    conn = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.copy_records_to_table("events", records=store_rows, columns=COLUMNS)
        await conn.execute("ANALYZE events")
        started = time.perf_counter()
        bodies = await conn.fetch("SELECT body FROM events WHERE event_type = ANY($1) ORDER BY seq", INCIDENT_TYPES)
        for row in bodies:
            json.loads(row["body"])
        baseline_s = time.perf_counter() - started
    finally:
        await conn.close()
    engine = engine_for(settings)
    try:
        started = time.perf_counter()
        rebuilt = await replay_incidents(engine)
        replay_s = time.perf_counter() - started
        async with engine.connect() as check:
            assert (await check.execute(text("SELECT count(*) FROM incidents"))).scalar_one() == rebuilt
    finally:
        await engine.dispose()
    return rebuilt, baseline_s, replay_s


def main(
    events: int = typer.Option(1_000_000, help="events in the store"),
    incidents: int = typer.Option(10_000, help="incidents among them (two events each)"),
) -> None:
    settings = bench_database()
    rebuilt, baseline_s, replay_s = asyncio.run(measure(settings, rows(events, incidents)))
    ratio = replay_s / baseline_s
    title = f"P6 replay: {events:,} stored events, {rebuilt:,} incidents rebuilt"
    table = Table(title=title)
    for column in ("", "seconds"):
        table.add_column(column)
    table.add_row("read and decode the incident events' bodies", f"{baseline_s:.2f}")
    table.add_row("`vigil replay` (every projection)", f"{replay_s:.2f}")
    Console().print(table)
    Console().print(f"ratio {ratio:.1f}")
    _write_section(
        "replay",
        f"### {title}\n\nOne run: `python -m benchmarks.replay --events {events} --incidents {incidents}`. "
        "Ratio = replay seconds / baseline seconds.\n\n| | seconds |\n|---|---|\n"
        f"| read and `json.loads` the incident events' bodies | {baseline_s:.2f} |\n"
        f"| `vigil replay` (every projection: incidents) | {replay_s:.2f} |\n| **ratio** | **{ratio:.1f}** |",
    )


if __name__ == "__main__":
    typer.run(main)
