"""P2, latency: from emitting an event to its alert on alert.v1, under load.

    python -m benchmarks.alert_latency [--rate 1000] [--seconds 60]

A real `vigil worker` on fresh topics reads the demo hospital's stream sent at `--rate` records/s
(about half of what P1 measures the worker to sustain on this machine). Every 200th step is the
WHO example instead: a patient-facing answer that advised self-care, then an outcome that found an
emergency, which the worker turns into an `EscalationMissed` alert. Latency: from sending the
outcome to the alert's record on alert.v1 (its Kafka timestamp). Baseline, in the same run: from
sending the outcome to a raw aiokafka consumer reading it on outcome.v1, what Kafka itself takes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.throughput import report_table
from benchmarks.worker_throughput import caught_up, ends, hospital_in_the_past, preload, record_of, start_worker, stop
from vigil.alerts import incident_id_for
from vigil.events import ALERT_TOPIC
from vigil_hospital import Hospital, missed_chest_pain
from vigil_runtime.settings import Settings
from vigil_runtime.topics import delete_topics

PROBE_EVERY = 200


async def _send_at_rate(
    settings: Settings, hospital: Hospital, every: timedelta, rate: int, seconds: float
) -> dict[str, tuple[str, float]]:
    """Sends the stream at `rate` records/s for `seconds`; returns, per probe outcome id, its
    incident id and when it was sent."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    await producer.start()
    stream = hospital.stream(rate * int(seconds) * 2, every)
    probes: dict[str, tuple[str, float]] = {}
    count, started = 0, time.time()
    try:
        while (elapsed := time.time() - started) < seconds:
            while count < int(elapsed * rate):
                count += 1
                if count % PROBE_EVERY:
                    topic, key, value = record_of(next(stream))
                    await producer.send(settings.topic(topic), value, key=key)
                    continue
                inference, outcome = missed_chest_pain(hospital, datetime.now(UTC) - timedelta(hours=6))
                for event in (inference, outcome):
                    topic, key, value = record_of(event)
                    await producer.send(settings.topic(topic), value, key=key)
                incident = incident_id_for("missed_escalation", inference["event_id"])
                probes[outcome["event_id"]] = (str(incident), time.time())
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await producer.stop()
    return probes


async def _arrivals(
    settings: Settings, topic: str, key_of: Callable[[dict], str | None], seen: dict[str, float], until: asyncio.Event
) -> None:
    """Fills `seen`: when each record (by `key_of` its value) was read on `topic` by a plain consumer."""
    consumer = AIOKafkaConsumer(settings.topic(topic), bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=f"latency-{uuid.uuid4().hex[:6]}")  # fmt: skip
    await consumer.start()
    try:
        while not until.is_set():
            for batch in (await consumer.getmany(timeout_ms=100)).values():
                now = time.time()
                for record in batch:
                    if key := key_of(json.loads(record.value)):
                        seen.setdefault(key, now)
    finally:
        await consumer.stop()


async def measure(rate: int, seconds: float) -> tuple[list[float], list[float]]:
    """(Kafka's latencies, Vigil's) in seconds, one per probe."""
    run = uuid.uuid4().hex[:6]
    settings = Settings(topic_prefix=f"latency{run}.", worker_id=f"vigil-latency-{run}")
    home = Path(f"/tmp/vigil-latency-{run}")
    home.mkdir(parents=True)
    hospital, every = hospital_in_the_past(23, rate * int(seconds) * 2)
    try:
        await preload(settings, [record_of(e) for e in hospital.registry()])
        worker = start_worker(settings, home)
        try:
            await caught_up(settings, worker, await ends(settings))  # running, the registry read
            done = asyncio.Event()
            read: dict[str, float] = {}
            alerted: dict[str, float] = {}
            readers = [
                asyncio.create_task(_arrivals(settings, "outcome.v1", lambda v: v.get("event_id"), read, done)),
                asyncio.create_task(
                    _arrivals(settings, ALERT_TOPIC, lambda v: v.get("labels", {}).get("incident_id"), alerted, done)
                ),
            ]
            probes = await _send_at_rate(settings, hospital, every, rate, seconds)
            for _ in range(120):  # the last probes' alerts
                if all(incident in alerted for incident, _ in probes.values()):
                    break
                await asyncio.sleep(0.5)
            done.set()
            await asyncio.gather(*readers)
        finally:
            stop(worker)
    finally:
        await delete_topics(settings, (settings.topic_prefix, settings.worker_id))
    kafka = [read[o] - at for o, (_, at) in probes.items() if o in read]
    vigil = [alerted[i] - at for i, at in probes.values() if i in alerted]
    if len(vigil) < len(probes):
        raise RuntimeError(f"{len(probes) - len(vigil)} of {len(probes)} probes raised no alert; see {home}")
    return kafka, vigil


def main(
    rate: int = typer.Option(1000, help="records/s sent (about half of P1's sustained rate here)"),
    seconds: float = typer.Option(60, help="how long to send"),
) -> None:
    kafka, vigil = asyncio.run(measure(rate, seconds))
    rows = []
    for name, values in (("Kafka: sent → read by a raw consumer", kafka), ("Vigil: outcome sent → alert read", vigil)):
        p50, p99 = np.percentile(values, [50, 99])
        rows.append((name, f"{len(values)}", f"{p50:.3f}", f"{p99:.3f}"))
    ratio = float(np.percentile(vigil, 99) / np.percentile(kafka, 99))
    report_table(
        "alert_latency",
        f"P2 latency: emit → alert at {rate:,} records/s for {seconds:g} s",
        f"One run: `python -m benchmarks.alert_latency --rate {rate} --seconds {seconds:g}`; a probe every "
        f"{PROBE_EVERY} records (the WHO missed-escalation example, which raises a critical alert). Ratio = "
        "Vigil's p99 / Kafka's p99.",
        ["", "probes", "p50 s", "p99 s"],
        rows,
        ("p99 ratio", "", "", f"{ratio:.1f}"),
    )


if __name__ == "__main__":
    typer.run(main)
