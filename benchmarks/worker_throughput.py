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
from vigil_sdk.transports import partition_key

from benchmarks.throughput import report_throughput
from vigil.events import INPUT_TOPICS, TOPIC_OF
from vigil_hospital import Hospital
from vigil_runtime.allocator import with_jemalloc
from vigil_runtime.settings import Settings
from vigil_runtime.topics import delete_topics, ensure_topics, partitions_of

ROOT = Path(__file__).resolve().parent.parent


def hospital_in_the_past(seed: int, inferences: int, every: timedelta | None = None) -> tuple[Hospital, timedelta]:
    """A hospital, and the spacing of its inferences, such that its first `inferences` inferences
    and every review and outcome that answers them lie in the past. The gate refuses a time after
    the record was sent, so a stream that ran on into the future would measure dead letters (it
    did: 94 % of P4's 5,000,000 records, 20 s apart from 30 days ago). The inferences end eight days
    ago (a screen's pathology comes a week after it), `every` apart, or else within 30 days (20 s
    apart while that fits)."""
    every = every or min(timedelta(seconds=20), timedelta(days=30) / max(inferences, 1))
    return Hospital(seed=seed, start=datetime.now(UTC) - timedelta(days=8) - every * inferences), every


def records(n: int, every: timedelta | None = None) -> list[tuple[str, bytes, bytes]]:
    """(logical topic, key, value): the registry, then n records of the hospital's stream, its
    inferences `every` apart (by default within 30 days: `hospital_in_the_past`)."""
    hospital, every = hospital_in_the_past(11, n, every)  # n records hold fewer than n inferences
    out = []
    for event in [*hospital.registry(), *hospital.stream(n, every)]:
        out.append(record_of(event))
        if len(out) == n:
            break
    return out


def record_of(event: dict) -> tuple[str, bytes, bytes]:
    """(logical topic, key, value) of an event as an emitter sends it."""
    return TOPIC_OF[event["event_type"]], partition_key(event), json.dumps(event).encode()


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


def start_worker(
    settings: Settings, home: Path, module: str = "services.cli", log: str = "worker.log", **env: str
) -> subprocess.Popen:
    """A real `vigil worker` process, without its watchdog (so that its pid is the worker's), or
    another Faust app's `worker` command, on the benchmark's topics, logging to home/log."""
    env = {**os.environ, "VIGIL_TOPIC_PREFIX": settings.topic_prefix, "VIGIL_WORKER_ID": settings.worker_id,
           "VIGIL_HOME": str(home), "VIGIL_WORKER_METRICS_PORT": "29201", "VIGIL_LOG_LEVEL": "warning",
           **env}  # fmt: skip
    with open(home / log, "ab") as out:
        command = [sys.executable, "-m", module, "worker", *(["--no-watchdog"] if module == "services.cli" else [])]
        # On the allocator the watchdog gives the worker it starts.
        return subprocess.Popen(command, env=with_jemalloc(env), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


async def caught_up(settings: Settings, process: subprocess.Popen, end: dict[TopicPartition, int]) -> float | None:
    """Waits until the worker's group has committed every end offset; returns when (perf_counter)
    it first committed anything, if it had not before."""
    first = None
    while True:
        await asyncio.sleep(0.5)
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with {process.returncode}; see its worker.log")
        done = await committed(settings, settings.worker_id)
        if first is None and any(done.get(tp, 0) for tp in end):
            first = time.perf_counter()
        if all(done.get(tp, 0) >= offset for tp, offset in end.items()):  # an empty partition has none
            return first


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:  # a stop that hangs must not leave it holding its port
        process.kill()
        process.wait()


async def worker(
    settings: Settings, end: dict[TopicPartition, int], home: Path, module: str = "services.cli"
) -> tuple[float, float]:
    """Seconds from starting `vigil worker` (or `module`'s) until its group has committed every end
    offset, and until its first commit (start-up: imports, joining the group, recovering tables)."""
    started = time.perf_counter()
    process = start_worker(settings, home, module, f"{module}.log")
    try:
        first = await caught_up(settings, process, end)
        return time.perf_counter() - started, (first or started) - started
    finally:
        stop(process)


def main(records_n: int = typer.Option(60_000, "--records", help="records to preload")) -> None:
    run = uuid.uuid4().hex[:6]
    settings = Settings(topic_prefix=f"bench{run}.", worker_id=f"vigil-bench-{run}")
    home = Path(f"/tmp/vigil-bench-{run}")
    home.mkdir(parents=True)
    items = records(records_n)
    n = len(items)
    bare = settings.model_copy(update={"worker_id": f"bare-faust-{run}"})

    async def measure() -> tuple[float, tuple[float, float], tuple[float, float]]:
        await preload(settings, items)
        end = await ends(settings)
        raw = await baseline(settings, n)
        return raw, await worker(bare, end, home, "benchmarks.bare_faust"), await worker(settings, end, home)

    try:
        raw_s, (bare_s, bare_startup_s), (worker_s, startup_s) = asyncio.run(measure())
    finally:
        asyncio.run(delete_topics(settings, (settings.topic_prefix, settings.worker_id, bare.worker_id)))
    report_throughput(
        "worker_throughput",
        f"P1 worker throughput: {n:,} preloaded records (the demo hospital's mix)",
        f"python -m benchmarks.worker_throughput --records {records_n}",
        "records/s",
        n,
        ("raw aiokafka consumer + `json.loads`", raw_s),
        ("`vigil worker` (start-up included)", worker_s),
        f"Start-up (until the first commit) took {startup_s:.1f} s of the worker's {worker_s:.1f} s; after it, "
        f"{n / max(worker_s - startup_s, 1e-9):,.0f} records/s. A bare Faust agent with the worker's consumer "
        f"settings that only `json.loads` each record (`benchmarks/bare_faust.py`), same records: {bare_s:.1f} s, "
        f"{n / bare_s:,.0f} records/s (ratio {raw_s / bare_s:.3f}); after its start-up ({bare_startup_s:.1f} s), "
        f"{n / max(bare_s - bare_startup_s, 1e-9):,.0f} records/s.",
    )


if __name__ == "__main__":
    typer.run(main)
