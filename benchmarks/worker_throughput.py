"""P1, worker throughput: the Faust worker against a raw aiokafka consumer on the same records.

    python -m benchmarks.worker_throughput [--records 60000]

Both read the same preloaded topics (the demo hospital's mix of inferences, reviews and outcomes,
registry first) on the local broker. The baseline reads every record and `json.loads` it; the
worker (a real `vigil worker` process, start-up included) is done when its consumer group has
committed the end of every input partition. Ratio = worker records/s / baseline records/s.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from benchmarks.throughput import report_throughput
from services.demo.hospital import Hospital
from services.settings import Settings
from services.topics import delete_topics, ensure_topics, partitions_of
from vigil.events import INPUT_TOPICS, TOPIC_OF

ROOT = Path(__file__).resolve().parent.parent


def records(n: int) -> list[tuple[str, bytes, bytes]]:
    """(logical topic, key, value): the registry, then n records of the hospital's stream."""
    hospital = Hospital(seed=11, start=datetime.now(UTC) - timedelta(days=30))
    out = []
    for event in [*hospital.registry(), *hospital.stream(n)]:
        key = str(event.get("model_id") or event["event_id"]).encode()
        out.append((TOPIC_OF[event["event_type"]], key, json.dumps(event).encode()))
        if len(out) == n:
            break
    return out


async def preload(settings: Settings, items: list[tuple[str, bytes, bytes]]) -> None:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        sends = [await producer.send(settings.topic(topic), value, key=key) for topic, key, value in items]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def ends(settings: Settings) -> dict[TopicPartition, int]:
    known = await partitions_of(settings, settings.topics(INPUT_TOPICS))
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        return await consumer.end_offsets([TopicPartition(t, p) for t, parts in known.items() for p in parts])
    finally:
        await consumer.stop()


async def baseline(settings: Settings, total: int) -> float:
    """Seconds for a raw consumer to read and decode every record."""
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(
        *settings.topics(INPUT_TOPICS), bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"baseline-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    seen = 0
    try:
        while seen < total:
            for batch in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                for record in batch:
                    json.loads(record.value)
                    seen += 1
    finally:
        await consumer.stop()
    return time.perf_counter() - started


async def committed(settings: Settings, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()


async def worker(settings: Settings, end: dict[TopicPartition, int], home: Path) -> tuple[float, float]:
    """Seconds from starting `vigil worker` until its group has committed every end offset, and
    until its first commit (start-up: imports, joining the group, recovering its tables)."""
    env = {**os.environ, "VIGIL_TOPIC_PREFIX": settings.topic_prefix, "VIGIL_WORKER_ID": settings.worker_id,
           "VIGIL_HOME": str(home), "VIGIL_WORKER_METRICS_PORT": "29201", "VIGIL_LOG_LEVEL": "warning"}  # fmt: skip
    log = open(home / "worker.log", "wb")  # noqa: SIM115  (closed below, after the process)
    started, first = time.perf_counter(), None
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "worker"], env=env, cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT)  # fmt: skip
    try:
        while True:
            await asyncio.sleep(0.5)
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited with {process.returncode}; see {home / 'worker.log'}")
            done = await committed(settings, settings.worker_id)
            if first is None and any(done.values()):
                first = time.perf_counter() - started
            if all(done.get(tp, 0) >= offset for tp, offset in end.items()):  # an empty partition has none
                return time.perf_counter() - started, first or 0.0
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def main(records_n: int = typer.Option(60_000, "--records", help="records to preload")) -> None:
    run = uuid.uuid4().hex[:6]
    settings = Settings(topic_prefix=f"bench{run}.", worker_id=f"vigil-bench-{run}")
    home = Path(f"/tmp/vigil-bench-{run}")
    home.mkdir(parents=True)
    items = records(records_n)

    async def measure() -> tuple[float, tuple[float, float]]:
        await preload(settings, items)
        end = await ends(settings)
        return await baseline(settings, len(items)), await worker(settings, end, home)

    try:
        raw_s, (worker_s, startup_s) = asyncio.run(measure())
    finally:
        asyncio.run(delete_topics(settings, (settings.topic_prefix, settings.worker_id)))
    report_throughput(
        "worker_throughput",
        f"P1 worker throughput: {len(items):,} preloaded records (the demo hospital's mix)",
        f"python -m benchmarks.worker_throughput --records {records_n}",
        "records/s",
        len(items),
        ("raw aiokafka consumer + `json.loads`", raw_s),
        ("`vigil worker` (start-up included)", worker_s),
        f"Start-up (until the first commit) took {startup_s:.1f} s of the worker's {worker_s:.1f} s; after it, "
        f"{len(items) / max(worker_s - startup_s, 1e-9):,.0f} records/s.",
    )


if __name__ == "__main__":
    typer.run(main)
