"""`vigil`: run, inspect and verify Vigil from the command line."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from services.database import ROOT, engine_for, migrate
from services.observability import configure_logging
from services.processes import services
from services.progress import console, progress_bar
from services.settings import Settings, get_settings

app = typer.Typer(help="Vigil: post-market surveillance for clinical AI models.", no_args_is_help=True)
schema_app = typer.Typer(help="Event schemas.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")

STACK = ROOT / "deploy" / "local" / "stack.sh"


def _stack(action: str, *parts: str) -> None:
    result = subprocess.run(["bash", str(STACK), action, *parts], check=False)
    if result.returncode != 0:
        console.print(f"[red]stack.sh {action} failed (exit {result.returncode})[/red]")
        raise typer.Exit(result.returncode)


def _init(settings: Settings) -> None:
    from services.topics import ensure_topics

    created = asyncio.run(ensure_topics(settings))
    console.print(f"[bold]\\[vigil][/bold] topics: {len(created)} created, {len(settings.topics())} in all")
    migrate(settings)
    console.print("[bold]\\[vigil][/bold] database migrated to head")


def _bring_up(settings: Settings) -> None:
    _stack("up")
    _init(settings)


@app.command()
def up() -> None:
    """Start Kafka, PostgreSQL, Prometheus and Alertmanager; create topics; migrate the database."""
    _bring_up(get_settings())


@app.command()
def init() -> None:
    """Create the Kafka topics and migrate the database (on servers that are already running)."""
    _init(get_settings())


@app.command()
def down() -> None:
    """Stop Vigil's processes and the servers `vigil up` started."""
    settings = get_settings()
    for name, process in services(settings.home).items():
        if process.pid():
            process.stop()
            console.print(f"[bold]\\[vigil][/bold] {name}: stopped")
    _stack("down")


@app.command()
def status() -> None:
    """What is running."""
    _stack("status")
    for name, process in services(get_settings().home).items():
        pid = process.pid()
        console.print(f"{name:<12} {'up    pid ' + str(pid) if pid else 'down'}")


@app.command()
def worker() -> None:
    """Run the Faust worker in the foreground."""
    from faust.worker import Worker

    from services.observability import serve_metrics
    from streams.app import app as faust_app

    settings = get_settings()
    configure_logging(settings)
    serve_metrics(settings.worker_metrics_port)
    Worker(faust_app, loglevel="warning", redirect_stdouts=False).execute_from_commandline()


@app.command()
def recorder() -> None:
    """Run the recorder (Kafka → event store) in the foreground."""
    from services.observability import serve_metrics
    from services.recorder.service import run_recorder

    settings = get_settings()
    configure_logging(settings)
    serve_metrics(settings.recorder_metrics_port)
    asyncio.run(run_recorder(settings))


@app.command()
def api() -> None:
    """Run the HTTP API in the foreground."""
    import uvicorn

    from services.api.app import create_app

    settings = get_settings()
    configure_logging(settings)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning")


@app.command()
def verify() -> None:
    """Walk the event store's hash chain; exit 1 naming the first altered, inserted or deleted row."""
    from services.recorder.store import EventStore

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


@schema_app.command("export")
def schema_export(
    out: Annotated[Path, typer.Option(help="directory for the JSON Schema files")] = ROOT / "schemas",
) -> None:
    """Write one JSON Schema file per event type (for emitters in other languages)."""
    from vigil.schemas import json_schemas

    out.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (out / f"{name}.v1.json").write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    console.print(f"wrote {len(json_schemas())} schemas to {out}")


@app.command()
def demo(
    inferences: Annotated[int, typer.Option(help="inferences to stream")] = 3000,
    seed: Annotated[int, typer.Option(help="seed of the synthetic hospital")] = 7,
) -> None:
    """Bring the stack up and stream a synthetic hospital's three models through Vigil."""
    from services.demo.run import run_demo

    settings = get_settings()
    _bring_up(settings)
    token = next((t for t, role in settings.api_tokens.items() if role == "emitter"), None)
    env = {}
    if token is None:
        token = "demo-" + secrets.token_hex(8)
        env["VIGIL_API_TOKENS"] = json.dumps({token: "emitter", **settings.api_tokens})
    processes = services(settings.home, env)
    for name, process in processes.items():
        process.stop()  # a demo always runs the code as it is now
        process.start()
        console.print(f"[bold]\\[vigil][/bold] {name}: started (log {process.logfile})")
    code = asyncio.run(run_demo(settings, token, inferences, seed, console))
    console.print(
        "\nThe stack keeps running: Prometheus at " + settings.prometheus_url + "; stop it all with `make down`."
    )
    raise typer.Exit(code)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(app())
