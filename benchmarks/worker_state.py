"""The worker's table stores: RSS per million waiting inferences, and recovery after a restart.

    python -m benchmarks.worker_state [--inferences 200000]

For each store (memory, rocksdb), on fresh topics: the registry, then inferences whose outcomes and
reviews never come, so each one waits in both joins. A `vigil worker` reads them all (its RSS then
is the state's), is stopped, and is started again; recovery is the time from that start until it
has read one more inference sent after it started (imports, joining the group and restoring its
tables: from the changelogs into memory, or from its RocksDB files and what changed since). The
baseline is the memory store, measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import typer
from aiokafka import AIOKafkaProducer
from vigil_sdk.transports import partition_key

from benchmarks.throughput import report_table
from benchmarks.worker_throughput import caught_up, ends, hospital_in_the_past, preload, record_of, start_worker, stop
from vigil_runtime.settings import Settings
from vigil_runtime.topics import delete_topics


def waiting_inferences(n: int) -> list[tuple[str, bytes, bytes]]:
    """The registry, then n of the hospital's inferences (and nothing that answers them)."""
    hospital, every = hospital_in_the_past(17, n)
    out = [record_of(e) for e in hospital.registry()]
    inferences = (e for e in hospital.stream(n * 3, every) if e["event_type"] == "InferenceMade")
    return out + [record_of(e) for _, e in zip(range(n), inferences, strict=False)]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def measure(store: str, items: list[tuple[str, bytes, bytes]]) -> tuple[int, float]:
    """(RSS in KiB after reading every item, seconds to recover after a restart)."""
    run = uuid.uuid4().hex[:6]
    settings = Settings(topic_prefix=f"state{run}.", worker_id=f"vigil-state-{run}")
    home = Path(f"/tmp/vigil-state-{run}")
    home.mkdir(parents=True)
    try:
        await preload(settings, items)
        process = start_worker(settings, home, VIGIL_WORKER_STORE=store)
        try:
            await caught_up(settings, process, await ends(settings))
            await asyncio.sleep(3)  # the last batch's writes
            rss = rss_kib(process.pid)
        finally:
            stop(process)
        started = time.perf_counter()
        process = start_worker(settings, home, VIGIL_WORKER_STORE=store)
        try:
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
            await producer.start()
            try:
                topic, _, value = items[-1]
                probe = json.loads(value) | {"event_id": str(uuid.uuid4())}
                await producer.send_and_wait(
                    settings.topic(topic), json.dumps(probe).encode(), key=partition_key(probe)
                )
            finally:
                await producer.stop()
            await caught_up(settings, process, await ends(settings))
            return rss, time.perf_counter() - started
        finally:
            stop(process)
    finally:
        await delete_topics(settings, (settings.topic_prefix, settings.worker_id))


def main(inferences: int = typer.Option(200_000, help="inferences left waiting")) -> None:
    items = waiting_inferences(inferences)
    stores = ("memory", "rocksdb")
    empty = {store: asyncio.run(measure(store, items[:-inferences]))[0] for store in stores}  # the registry alone
    results = {store: asyncio.run(measure(store, items)) for store in stores}
    per_million = {store: (rss - empty[store]) / 1024 * 1_000_000 / inferences for store, (rss, _) in results.items()}
    base_recovery = results["memory"][1]
    rows = [
        (
            store,
            f"{rss / 1024:,.0f}",
            f"{per_million[store]:,.0f}",
            f"{recovery:.1f}",
            f"{recovery / base_recovery:.2f}",
        )
        for store, (rss, recovery) in results.items()
    ]
    report_table(
        "worker_state",
        f"Worker state: {inferences:,} inferences waiting in both joins",
        f"One run: `python -m benchmarks.worker_state --inferences {inferences}`. RSS of the worker after it read "
        "them all; per million: above a worker that read the registry alone, scaled linearly; recovery: from a "
        "restart until it has read one more inference; ratio against the memory store in the same run.",
        ["store", "RSS MiB", "RSS MiB per million waiting", "recovery s", "recovery ratio"],
        rows,
    )


if __name__ == "__main__":
    typer.run(main)
