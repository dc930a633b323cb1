"""The demo: a synthetic hospital's models emit through the SDK, half over Kafka, half over HTTP."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.table import Table
from vigil_sdk import AsyncEmitter

from services.demo.card import card_of_the_demo
from services.demo.drift import drift_episode
from services.demo.equity import equity_finding
from services.demo.estimate import estimate_ahead_of_pathology, upload_validation_study
from services.demo.guideline import guideline_change
from services.demo.incidents import incident_scenario
from services.demo.oversight import oversight_episode, transparency_episode
from services.export import run_export
from services.progress import progress_bar
from services.store import reads
from services.store.event_store import EventStore
from vigil.export import span
from vigil.policy import load_policy
from vigil_hospital import Hospital, malformed_records
from vigil_runtime.database import engine_for
from vigil_runtime.settings import Settings


async def _wait_for_api(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API at {url} did not come up within {seconds:.0f} s")
            await asyncio.sleep(0.5)


async def run_demo(
    settings: Settings, tokens: dict[str, str], inferences: int, seed: int, out: Path, console: Console
) -> int:
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    await _wait_for_api(api_url)
    store = EventStore(engine_for(settings))
    started = datetime.now(UTC)

    hospital = Hospital(seed=seed, start=started - timedelta(days=14))
    spool = settings.home / "demo-spool"
    sent = 0
    sent_ids: list[str] = []
    async with (
        AsyncEmitter(
            kafka=settings.kafka_bootstrap, topic_prefix=settings.topic_prefix, spool_dir=spool / "kafka"
        ) as direct,
        AsyncEmitter(api_url=api_url, token=tokens["emitter"], spool_dir=spool / "http") as over_http,
    ):
        # The registry first: the worker judges outcomes against the model's registered label set.
        registry = [dict(e) for e in hospital.registry()]
        for event in registry:
            sent_ids.append(await over_http.emit(event.pop("event_type"), **event))
            sent += 1
        await over_http.flush()
        deadline = time.monotonic() + 60
        while await store.count_of(sent_ids) < len(sent_ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await upload_validation_study(api_url, tokens["emitter"], hospital, console)
        pathology: list[dict] = []  # mammo-screen's outcomes come 7 days after the screen: held back until step 11
        with progress_bar() as progress:
            task = progress.add_task("streaming the synthetic hospital", total=None)
            for event in list(hospital.stream(inferences)):  # whole first: sending takes each event apart
                if event["event_type"] == "OutcomeObserved" and event["model_id"] == "mammo-screen":
                    pathology.append(event)
                    continue
                # The imaging vendor writes straight to Kafka; the other two use the HTTP API.
                emitter = direct if event.get("model_id") == "mammo-screen" else over_http
                sent_ids.append(await emitter.emit(event.pop("event_type"), **event))
                sent += 1
                progress.update(task, completed=sent)
        console.print(f"[bold]\\[demo][/bold] {sent} events handed to the SDK; flushing "
                      f"(mammo-screen's {len(pathology)} pathology results come later)")  # fmt: skip

    # A careless emitter writes bad records straight to Kafka: they must become dead letters.
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    bad = malformed_records(seed)
    for topic, raw in bad:
        await producer.send_and_wait(settings.topic(topic), raw)
    await producer.stop()

    with progress_bar() as progress:
        task = progress.add_task("recording in PostgreSQL", total=sent)
        deadline = time.monotonic() + 300
        while (recorded := await store.count_of(sent_ids)) < sent and time.monotonic() < deadline:
            progress.update(task, completed=recorded)
            await asyncio.sleep(0.5)
        progress.update(task, completed=recorded)

    async with store.engine.connect() as conn:
        by_topic = await reads.topics_since(conn, started)
        deadline = time.monotonic() + 60
        while True:
            letters = [(d.reason_kind, d.reason) for d in await reads.dead_letters_of(conn, since=started)]
            if len(letters) >= len(bad) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
            await conn.rollback()

    table = Table(title="What flowed where")
    table.add_column("topic")
    table.add_column("events recorded", justify="right")
    for topic, n in by_topic:
        table.add_row(topic, str(n))
    table.add_row("[bold]all[/bold]", f"[bold]{recorded}[/bold] of {sent} sent")
    console.print(table)

    dl = Table(title="Dead letters (refused records, with the reason)")
    dl.add_column("kind")
    dl.add_column("reason")
    for kind, reason in letters:
        dl.add_row(kind, reason)
    console.print(dl)

    await drift_episode(store.engine, started, console)
    await equity_finding(settings, store.engine, started, console)
    await oversight_episode(store.engine, started, console)
    await transparency_episode(store.engine, started, console)

    async def send_pathology() -> None:
        async with AsyncEmitter(kafka=settings.kafka_bootstrap, topic_prefix=settings.topic_prefix,
                                spool_dir=spool / "pathology") as imaging:  # fmt: skip
            for event in pathology:
                await imaging.emit(event["event_type"], **{k: v for k, v in event.items() if k != "event_type"})

    policy = load_policy(settings.policy_file)
    held_back = [e["event_id"] for e in pathology]
    await estimate_ahead_of_pathology(store.engine, policy, started, held_back, send_pathology, console)

    async with AsyncEmitter(api_url=api_url, token=tokens["emitter"], spool_dir=spool / "incident") as emitter:
        cases = await guideline_change(
            settings, store.engine, emitter, tokens["safety_officer"], hospital.start, out, console
        )
        console.print(f"[bold]\\[demo][/bold] recommendations to re-review after the guideline change: {cases}")
        written = await incident_scenario(settings, store.engine, emitter, tokens["safety_officer"], out, console)
    for path in written:
        console.print(f"[bold]\\[demo][/bold] incident report written: {path}")
    for path in await card_of_the_demo(store.engine, policy, out, console):
        console.print(f"[bold]\\[demo][/bold] model card written: {path}")

    # The span the demo streamed, not the calendar quarter: early in a quarter most of it lies in the last one.
    ended = datetime.now(UTC)
    folder = await run_export(settings, policy, span(hospital.start, ended), out, ended)
    console.print(f"[bold]\\[demo][/bold] regulatory export written: {folder} (manifest.json lists its files)")

    checked, problem = await store.verify()
    await store.engine.dispose()
    console.print(
        f"[green]hash chain intact over {checked} events[/green]"
        if problem is None
        else f"[red]chain broken: {problem}[/red]"
    )
    ok = recorded == sent and problem is None and len(letters) == len(bad)
    return 0 if ok else 1
