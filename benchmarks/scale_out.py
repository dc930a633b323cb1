"""Scale-out: one `vigil worker` against two on eight partitions, the same records, one model
carrying most of the traffic.

    python -m benchmarks.scale_out [--records 60000]

The records are the demo hospital's stream with ed-triage's every inference and a fifth of the
other two models' (each with its reviews and outcomes), preloaded into topics of eight partitions.
Inferences, outcomes and reviews are keyed by inference id, so ed-triage's stream lies on all
eight. Each run is a fresh consumer group with fresh tables, start-up included, and is done when
its group has committed the end of every input partition and then of every partition of
`handover.v1` (the second stage has counted and judged all of it). Ratio = two workers' records/s
/ one worker's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path

import typer
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.throughput import report_table
from benchmarks.worker_throughput import committed, ends, hospital_in_the_past, preload, record_of, start_worker, stop
from vigil.events import HANDOVER_TOPIC
from vigil_runtime.settings import Settings
from vigil_runtime.topics import delete_topics

PARTITIONS = 8
MAIN_MODEL = "ed-triage"


def records(n: int) -> tuple[list[tuple[str, bytes, bytes]], Counter[str]]:
    """The registry, then n records of the hospital's stream thinned as above; and records per model."""
    hospital, every = hospital_in_the_past(11, n * 2)
    kept: set[str] = set()
    seen: Counter[str] = Counter()
    out, per_model = [record_of(e) for e in hospital.registry()], Counter[str]()
    for event in hospital.stream(n * 2, every):
        if event["event_type"] == "InferenceMade":
            seen[event["model_id"]] += 1
            if event["model_id"] == MAIN_MODEL or seen[event["model_id"]] % 5 == 0:
                kept.add(event["event_id"])
        if event.get("inference_id", event["event_id"]) in kept:
            out.append(record_of(event))
            per_model[event["model_id"]] += 1
        if len(out) >= n:
            break
    return out, per_model


async def handover_ends(settings: Settings) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        topic = settings.topic(HANDOVER_TOPIC)
        return await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        await consumer.stop()


async def drained(
    settings: Settings, workers: int, home: Path, inputs: dict[TopicPartition, int], standbys: int = 1
) -> float:
    """Seconds from starting `workers` worker processes in one group (each keeping `standbys`
    standby copies of the others' tables) until it has committed the inputs' ends, and then the
    ends of `handover.v1` as they stand by then."""
    started = time.perf_counter()
    processes = [
        start_worker(
            settings,
            home,
            log=f"worker-{n}.log",
            VIGIL_WORKER_METRICS_PORT=str(29210 + n),
            VIGIL_HOME=str(home / f"worker-{n}"),
            VIGIL_TOPIC_PARTITIONS=str(PARTITIONS),
            VIGIL_WORKER_STANDBY_REPLICAS=str(standbys),
        )
        for n in range(workers)
    ]
    try:
        end = dict(inputs)
        handover_read = False
        while True:
            await asyncio.sleep(0.5)
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"a worker exited; see {home}/worker-*.log")
            done = await committed(settings, settings.worker_id)
            if all(done.get(tp, 0) >= offset for tp, offset in end.items()):
                if handover_read:
                    return time.perf_counter() - started
                end, handover_read = await handover_ends(settings), True  # the second stage's share
    finally:
        for process in processes:
            stop(process)


def main(records_n: int = typer.Option(60_000, "--records", help="records to preload")) -> None:
    run = uuid.uuid4().hex[:6]
    base = Settings(topic_prefix=f"scale{run}.", worker_id=f"vigil-scale-{run}-1", topic_partitions=PARTITIONS)
    two = base.model_copy(update={"worker_id": f"vigil-scale-{run}-2"})
    two_alone = base.model_copy(update={"worker_id": f"vigil-scale-{run}-3"})
    home = Path(f"/tmp/vigil-scale-{run}")
    for n in range(2):
        (home / f"worker-{n}").mkdir(parents=True)
    items, per_model = records(records_n)
    n = len(items)

    async def measure() -> tuple[float, float, float]:
        await preload(base, items)
        inputs = await ends(base)
        one = await drained(base, 1, home, inputs)
        return one, await drained(two, 2, home, inputs), await drained(two_alone, 2, home, inputs, standbys=0)

    try:
        one_s, two_s, alone_s = asyncio.run(measure())
    finally:
        asyncio.run(delete_topics(base, (base.topic_prefix, base.worker_id, two.worker_id, two_alone.worker_id)))
    share = per_model[MAIN_MODEL] / sum(per_model.values())
    report_table(
        "scale_out",
        f"Scale-out: {n:,} preloaded records on {PARTITIONS} partitions, {share:.0%} of them one model's",
        f"One run: `python -m benchmarks.scale_out --records {records_n}`. Ratio = two workers' records/s / "
        "one worker's; start-up included, done when the second stage has taken every handover.",
        ["", "seconds", "records/s", "ratio"],
        [
            ("1 × `vigil worker`", f"{one_s:.2f}", f"{n / one_s:,.0f}", "1.000"),
            ("2 × `vigil worker`, one group", f"{two_s:.2f}", f"{n / two_s:,.0f}", f"{one_s / two_s:.3f}"),
            (
                "2 × `vigil worker`, one group, no standby tables (`VIGIL_WORKER_STANDBY_REPLICAS=0`)",
                f"{alone_s:.2f}",
                f"{n / alone_s:,.0f}",
                f"{one_s / alone_s:.3f}",
            ),
        ],
    )


if __name__ == "__main__":
    typer.run(main)
