"""The event store itself: verify its hash chain, replay its projections."""

from __future__ import annotations

import asyncio

import typer

from services.cli.app import app
from services.progress import console, progress_bar
from vigil_runtime.database import engine_for
from vigil_runtime.settings import get_settings


@app.command()
def verify() -> None:
    """Walk the event store's hash chain; exit 1 naming the first altered, inserted or deleted row."""
    from services.store.event_store import EventStore

    async def run() -> tuple[int, object]:
        store = EventStore(engine_for(get_settings()))
        try:
            total = await store.head_seq()
            with progress_bar() as progress:
                task = progress.add_task("verifying hash chain", total=total)
                result = await store.verify(lambda n: progress.update(task, completed=n) if n % 500 == 0 else None)
                progress.update(task, completed=result[0])
            return result
        finally:
            await store.engine.dispose()

    checked, problem = asyncio.run(run())
    if problem:
        console.print(f"[red]chain broken at {problem}[/red]")
        raise typer.Exit(1)
    console.print(f"[green]chain intact: {checked} events verified[/green]")


@app.command()
def replay() -> None:
    """Drop the projections and rebuild them from the event store."""
    from services.store.replay import replay_incidents

    async def run() -> int:
        engine = engine_for(get_settings())
        try:
            with progress_bar() as progress:
                task = progress.add_task("replaying incident events", total=None)
                return await replay_incidents(
                    engine, lambda done, total: progress.update(task, completed=done, total=total)
                )
        finally:
            await engine.dispose()

    console.print(f"[green]incidents projection rebuilt: {asyncio.run(run())} incidents[/green]")
