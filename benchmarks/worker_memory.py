"""P4, worker memory: RSS after N and after 5N records of the demo hospital's fixed cardinality.

    python -m benchmarks.worker_memory [--records 200000] [--store memory --store rocksdb]

One `vigil worker` reads 5N preloaded records of the hospital's mix (three models, three sites,
the same features and subgroups throughout, and the same rate: an inference every 5 s, so that
the last 4N records hold no more per day or per hour than the first N); its RSS is taken when
its group has committed N records and again at 5N, once with each table store
(`VIGIL_WORKER_STORE`), each on topics of its own. The baseline is the RSS at N, in the same
run: ratio = RSS at 5N / RSS at N. The issue's bound is a growth of at most 5 % (ratio 1.05).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import typer
from rich.console import Console

from benchmarks.throughput import report_table
from benchmarks.worker_state import rss_kib
from benchmarks.worker_throughput import committed, ends, preload, records, start_worker, stop
from vigil_runtime.settings import Settings
from vigil_runtime.topics import delete_topics


async def rss_at(settings: Settings, marks: list[int], total: int, store: str) -> list[int]:
    """The worker's RSS (KiB) when its group has first committed each of `marks` records."""
    home = Path(f"/tmp/vigil-memory-{settings.worker_id}")
    home.mkdir(parents=True)
    process = start_worker(settings, home, VIGIL_WORKER_STORE=store)
    found: list[int] = []
    try:
        end = await ends(settings)
        assert sum(end.values()) == total
        while len(found) < len(marks):
            await asyncio.sleep(0.5)
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited with {process.returncode}; see {home}")
            done = await committed(settings, settings.worker_id)
            if sum(done.get(tp, 0) for tp in end) >= marks[len(found)]:
                await asyncio.sleep(2)  # the batch in hand
                found.append(rss_kib(process.pid))
                Console().print(f"{marks[len(found) - 1]:,} records: RSS {found[-1] / 1024:,.0f} MiB")
        return found
    finally:
        stop(process)


STORES = ["memory", "rocksdb"]
# The stream's rate, the same for any N: "fixed cardinality" per day and per hour. Fitted into a
# fixed span instead (as the throughput benchmarks' streams are), 5N records were five times as
# dense as N.
EVERY = timedelta(seconds=5)


def main(
    records_n: int = typer.Option(200_000, "--records", help="N: RSS after N and after 5N records"),
    stores: list[str] = typer.Option(STORES, "--store", help="the stores to measure"),
) -> None:
    items = records(5 * records_n, EVERY)
    rows = []
    for store in stores:
        run = uuid.uuid4().hex[:6]
        settings = Settings(topic_prefix=f"memory{run}.", worker_id=f"vigil-memory-{run}")

        async def measure(settings: Settings = settings, store: str = store) -> list[int]:
            await preload(settings, items)
            return await rss_at(settings, [records_n, len(items)], len(items), store)

        try:
            first, last = asyncio.run(measure())
        finally:
            asyncio.run(delete_topics(settings, (settings.topic_prefix, settings.worker_id)))
        rows.append((store, f"{first / 1024:,.0f}", f"{last / 1024:,.0f}", f"**{last / first:.3f}**"))
    chosen = "" if stores == STORES else "".join(f" --store {store}" for store in stores)
    report_table(
        "worker_memory",
        f"P4 worker memory: RSS after {records_n:,} and {len(items):,} records of the hospital's mix",
        f"One run: `python -m benchmarks.worker_memory --records {records_n}{chosen}`. "
        "Ratio = RSS after 5N / RSS after N, per store, in the same run (bound: 1.05).",
        ["store", f"RSS MiB after {records_n:,}", f"after {len(items):,}", "ratio"],
        rows,
    )


if __name__ == "__main__":
    typer.run(main)
