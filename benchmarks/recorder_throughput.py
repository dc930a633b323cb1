"""P5, recorder throughput: one recorder and several sharing the partitions (hash chain, tracking
records, one transaction per batch) against PostgreSQL's COPY of the same rows into a table with a
unique key.

    python -m benchmarks.recorder_throughput [--records 60000] [--recorders 2]

All in the same run, on a database of their own (`vigil_bench`, created by the stack script). The
recorders are real `vigil recorder` processes, start-up included, done when every event is stored.
The baseline COPYs the same canonical bodies with their ids, what a recorder that did nothing else
would cost; `EventStore.append` alone, on events decoded beforehand, is what one chain can take
however many recorders share it. Ratio = events/s / COPY's rows/s.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import typer
from sqlalchemy import text

from benchmarks.throughput import report_table
from benchmarks.worker_throughput import preload, records
from services.store.event_store import EventStore, Incoming
from vigil.events import Event
from vigil.validation import canonical_json, decode
from vigil_runtime.database import engine_for, migrate
from vigil_runtime.settings import Settings
from vigil_runtime.topics import delete_topics

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "vigil_bench"


async def fresh_store(settings: Settings) -> None:
    engine = engine_for(settings)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def copy_baseline(settings: Settings, bodies: list[tuple[str, str]]) -> float:
    url = settings.database_url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TEMP TABLE copied (event_id uuid PRIMARY KEY, body text NOT NULL)")
        started = time.perf_counter()
        await conn.copy_records_to_table("copied", records=[(uuid.UUID(i), b) for i, b in bodies])
        return time.perf_counter() - started
    finally:
        await conn.close()


class Run(NamedTuple):
    seconds: float  # from starting the processes until every event is stored
    start_up: float  # until the first event is stored


async def recorders(settings: Settings, ids: list[str], home: Path, n: int) -> Run:
    """`n` recorder processes, each with its share of the partitions, until every event is stored.
    Progress is read off the chain's head (an index lookup): a count(*) every 0.2 s would take a
    share of the CPU the recorders and PostgreSQL are measured on."""
    env = {**os.environ, "VIGIL_TOPIC_PREFIX": settings.topic_prefix, "VIGIL_DATABASE_URL": settings.database_url,
           "VIGIL_HOME": str(home), "VIGIL_LOG_LEVEL": "warning"}  # fmt: skip
    store = EventStore(engine_for(settings))
    logs = [open(home / f"recorder-{i}.log", "wb") for i in range(n)]  # noqa: SIM115  (closed below)
    started = time.perf_counter()
    shares = [env | {"VIGIL_RECORDER_METRICS_PORT": str(29202 + i), "VIGIL_RECORDER_SHARE": f"{i + 1}/{n}"}
              for i in range(n)]  # fmt: skip
    command = [sys.executable, "-m", "services.cli", "recorder"]
    processes = [
        subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=share)
        for share, log in zip(shares, logs, strict=True)
    ]
    try:
        start_up = None
        while (head := await store.head_seq()) < len(ids):
            if exited := [p for p in processes if p.poll() is not None]:
                raise RuntimeError(f"a recorder exited with {exited[0].returncode}; see {home}/recorder-*.log")
            if head and start_up is None:
                start_up = time.perf_counter() - started
            await asyncio.sleep(0.2)
        return Run(time.perf_counter() - started, start_up or 0.0)
    finally:
        for process in processes:
            process.terminate()
        for process, log in zip(processes, logs, strict=True):
            process.wait(30)
            log.close()
        await store.engine.dispose()


async def append_alone(settings: Settings, events: list[Event]) -> float:
    """Seconds for `EventStore.append` alone to store the decoded events in batches of 1,000: what
    one chain takes, however many recorders share it (each append holds the chain's lock)."""
    store = EventStore(engine_for(settings))
    incoming = [Incoming("inference.v1", 0, i, event) for i, event in enumerate(events)]
    started = time.perf_counter()
    for i in range(0, len(incoming), 1000):
        await store.append(incoming[i : i + 1000], [], {("bench", 0): i + 1000})
    took = time.perf_counter() - started
    await store.engine.dispose()
    return took


def bench_database(**settings: Any) -> Settings:
    """Settings on the benchmarks' own database, which the stack script creates if need be."""
    subprocess.run(["bash", str(ROOT / "deploy/local/stack.sh"), "up", "postgres"], check=True,
                   env={**os.environ, "VIGIL_PG_EXTRA_DBS": DATABASE}, stdout=subprocess.DEVNULL)  # fmt: skip
    return Settings.model_validate(
        {"database_url": Settings().database_url.rsplit("/", 1)[0] + f"/{DATABASE}", **settings}
    )


def main(
    records_n: int = typer.Option(60_000, "--records", help="records to preload"),
    most: int = typer.Option(2, "--recorders", help="also measure this many recorder processes together"),
) -> None:
    run = uuid.uuid4().hex[:6]
    settings = bench_database(topic_prefix=f"benchrec{run}.")
    home = Path(f"/tmp/vigil-bench-recorder-{run}")
    home.mkdir(parents=True)
    items = records(records_n)
    events = [decode(value, topic) for topic, _, value in items]
    bodies = [(str(e.event_id), canonical_json(e)) for e in events]
    ids = [i for i, _ in bodies]
    counts = sorted({1, most})

    async def measure() -> tuple[float, float, dict[int, Run]]:
        await fresh_store(settings)
        await asyncio.to_thread(migrate, settings)
        await preload(settings, items)
        copy_s = await copy_baseline(settings, bodies)
        append_s = await append_alone(settings, events)
        took = {}
        for n in counts:
            await fresh_store(settings)
            await asyncio.to_thread(migrate, settings)
            took[n] = await recorders(settings, ids, home, n)
        return copy_s, append_s, took

    try:
        copy_s, append_s, took = asyncio.run(measure())
    finally:
        asyncio.run(delete_topics(settings, (settings.topic_prefix,)))
    n = len(items)
    what = "(decode, PHI guard, hash chain, tracking records)"
    rows = [
        ("`COPY` of the same rows into a table with a unique key", f"{copy_s:.2f}", f"{n / copy_s:,.0f}", "", "",
         "1.000"),
        ("`EventStore.append` alone: decoded events, batches of 1,000 (what one chain takes)", f"{append_s:.2f}",
         f"{n / append_s:,.0f}", "", "", f"{copy_s / append_s:.3f}"),
        *((f"{count} × `vigil recorder` {what}", f"{run.seconds:.2f}", f"{n / run.seconds:,.0f}",
           f"{run.start_up:.2f}", f"{n / (run.seconds - run.start_up):,.0f}", f"{copy_s / run.seconds:.3f}")
          for count, run in took.items()),
    ]  # fmt: skip
    report_table(
        "recorder_throughput",
        f"P5 recorder throughput: {n:,} events, {os.cpu_count()} cores",
        f"One run: `python -m benchmarks.recorder_throughput --records {records_n} --recorders {most}`. "
        "Ratio = events/s (start-up included) / COPY's rows/s. Recorders share the partitions "
        "(`VIGIL_RECORDER_SHARE`) and one hash chain; start-up: from starting the processes until the first event "
        "is stored.",
        ["", "seconds", "events/s", "start-up s", "events/s after start-up", "ratio"],
        rows,
    )


if __name__ == "__main__":
    typer.run(main)
