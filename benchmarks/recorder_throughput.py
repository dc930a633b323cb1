"""P5, recorder throughput: the recorder (hash chain, tracking records, one transaction per batch)
against PostgreSQL's COPY of the same rows into a table with a unique key.

    python -m benchmarks.recorder_throughput [--records 60000]

Both in the same run, on a database of their own (`vigil_bench`, created by the stack script).
The recorder is a real `vigil recorder` process, start-up included, done when every event is
stored. The baseline COPYs the same canonical bodies with their ids, what a recorder that did
nothing else would cost. Ratio = recorder events/s / COPY rows/s.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import typer
from sqlalchemy import text

from benchmarks.throughput import report_throughput
from benchmarks.worker_throughput import preload, records
from services.database import engine_for, migrate
from services.recorder.store import EventStore
from services.settings import Settings
from services.topics import delete_topics
from vigil.validation import canonical_json, decode

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


async def recorder(settings: Settings, ids: list[str], home: Path) -> float:
    env = {**os.environ, "VIGIL_TOPIC_PREFIX": settings.topic_prefix, "VIGIL_DATABASE_URL": settings.database_url,
           "VIGIL_HOME": str(home), "VIGIL_RECORDER_METRICS_PORT": "29202", "VIGIL_LOG_LEVEL": "warning"}  # fmt: skip
    store = EventStore(engine_for(settings))
    log = open(home / "recorder.log", "wb")  # noqa: SIM115  (closed below, after the process)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "recorder"], env=env, cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT)  # fmt: skip
    try:
        while await store.count() < len(ids):
            if process.poll() is not None:
                raise RuntimeError(f"the recorder exited with {process.returncode}; see {home / 'recorder.log'}")
            await asyncio.sleep(0.2)
        return time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        await store.engine.dispose()


def bench_database(**settings: str) -> Settings:
    """Settings on the benchmarks' own database, which the stack script creates if need be."""
    subprocess.run(["bash", str(ROOT / "deploy/local/stack.sh"), "up", "postgres"], check=True,
                   env={**os.environ, "VIGIL_PG_EXTRA_DBS": DATABASE}, stdout=subprocess.DEVNULL)  # fmt: skip
    return Settings(database_url=Settings().database_url.rsplit("/", 1)[0] + f"/{DATABASE}", **settings)


def main(records_n: int = typer.Option(60_000, "--records", help="records to preload")) -> None:
    run = uuid.uuid4().hex[:6]
    settings = bench_database(topic_prefix=f"benchrec{run}.")
    home = Path(f"/tmp/vigil-bench-recorder-{run}")
    home.mkdir(parents=True)
    items = records(records_n)
    events = [decode(value, topic) for topic, _, value in items]
    bodies = [(str(e.event_id), canonical_json(e)) for e in events]

    async def measure() -> tuple[float, float]:
        await fresh_store(settings)
        await asyncio.to_thread(migrate, settings)
        await preload(settings, items)
        copy_s = await copy_baseline(settings, bodies)
        return copy_s, await recorder(settings, [i for i, _ in bodies], home)

    try:
        copy_s, recorder_s = asyncio.run(measure())
    finally:
        asyncio.run(delete_topics(settings, (settings.topic_prefix,)))
    report_throughput(
        "recorder_throughput",
        f"P5 recorder throughput: {len(items):,} events",
        f"python -m benchmarks.recorder_throughput --records {records_n}",
        "events/s",
        len(items),
        ("`COPY` of the same rows into a table with a unique key", copy_s),
        ("`vigil recorder` (decode, PHI guard, hash chain, tracking records; start-up included)", recorder_s),
    )


if __name__ == "__main__":
    typer.run(main)
