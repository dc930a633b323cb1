"""Process control: the stack, the topics and the database, Vigil's own processes, the demo."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from services.cli.app import app
from services.processes import services
from services.progress import console
from vigil_runtime.database import ROOT, migrate
from vigil_runtime.observability import configure_logging
from vigil_runtime.settings import Settings, get_settings

STACK = ROOT / "deploy" / "local" / "stack.sh"


def _stack(action: str, *parts: str) -> None:
    result = subprocess.run(["bash", str(STACK), action, *parts], check=False)
    if result.returncode != 0:
        console.print(f"[red]stack.sh {action} failed (exit {result.returncode})[/red]")
        raise typer.Exit(result.returncode)


def _init(settings: Settings) -> None:
    from vigil_runtime.topics import ensure_topics

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
    """What is running: one line per server and per Vigil process."""
    table = Table("component", "state", "where")
    stack = subprocess.run(["bash", str(STACK), "status"], capture_output=True, text=True, check=False)
    for line in stack.stdout.splitlines():
        name, state, *where = line.split(maxsplit=2)
        table.add_row(name, state, where[0] if where else "")
    for name, process in services(get_settings().home).items():
        pid = process.pid()
        table.add_row(name, "up" if pid else "down", f"pid {pid}" if pid else "")
    console.print(table)


@app.command()
def worker(
    watchdog: Annotated[
        bool, typer.Option(help="run it under a watchdog that starts it again when it exits or stalls")
    ] = True,
) -> None:
    """Run the Faust worker in the foreground (under its watchdog: services/worker_watchdog.py)."""
    settings = get_settings()
    if watchdog:
        from services.worker_watchdog import Watchdog

        configure_logging(settings)
        asyncio.run(Watchdog(settings).run())
        return

    from vigil_runtime.allocator import set_up_allocator

    allocator = set_up_allocator()  # before the imports below start threads
    import structlog
    from faust.worker import Worker

    from streams.worker import app as faust_app
    from vigil_runtime.observability import serve_metrics

    settings.home.mkdir(parents=True, exist_ok=True)  # Faust keeps its data directory there
    configure_logging(settings)
    structlog.get_logger().info("worker.allocator", allocator=allocator)
    serve_metrics(settings.worker_metrics_port)
    process = Worker(faust_app, loglevel="warning", redirect_stdouts=False)
    # Faust's start-up spinner sets the root logger to DEBUG so that it spins on every record: every
    # debug call in Faust and aiokafka then builds a log record (5 % of the worker's time).
    process.spinner = None
    process.execute_from_commandline()


@app.command()
def recorder() -> None:
    """Run the recorder (Kafka → event store) in the foreground."""
    from services.recorder.service import run_recorder
    from vigil_runtime.observability import serve_metrics

    settings = get_settings()
    configure_logging(settings)
    serve_metrics(settings.recorder_metrics_port)
    asyncio.run(run_recorder(settings))


@app.command("otlp-reader")
def otlp_reader() -> None:
    """Run the OTLP reader (a Collector's Kafka topic of GenAI spans → InferenceMade) in the foreground."""
    from services.otlp_reader import run_otlp_reader
    from vigil_runtime.observability import serve_metrics

    settings = get_settings()
    configure_logging(settings)
    serve_metrics(settings.otlp_reader_metrics_port)
    asyncio.run(run_otlp_reader(settings))


@app.command()
def estimator() -> None:
    """Run the estimator (the store → estimated performance of pending outputs) in the foreground."""
    from services.estimator import run_estimator
    from vigil_runtime.observability import serve_metrics

    settings = get_settings()
    configure_logging(settings)
    serve_metrics(settings.estimator_metrics_port)
    asyncio.run(run_estimator(settings))


@app.command()
def notifier() -> None:
    """Run the notifier (alert.v1 → Alertmanager) in the foreground."""
    from services.notifier.service import run_notifier

    settings = get_settings()
    configure_logging(settings)
    asyncio.run(run_notifier(settings))


@app.command()
def api() -> None:
    """Run the HTTP API in the foreground."""
    import uvicorn

    from services.api.app import create_app

    settings = get_settings()
    configure_logging(settings)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning")


@app.command()
def demo(
    inferences: Annotated[int, typer.Option(help="inferences to stream")] = 6000,
    seed: Annotated[int, typer.Option(help="seed of the synthetic hospital")] = 7,
    out: Annotated[Path, typer.Option(help="where the incident report is written")] = Path("out"),
) -> None:
    """Bring the stack up and stream a synthetic hospital's three models through Vigil."""
    from services.demo.run import run_demo

    settings = get_settings()
    _bring_up(settings)
    # The demo's own tokens, beside whatever is configured; written down so that a person can try the API.
    tokens = {role: "demo-" + secrets.token_hex(8) for role in ("emitter", "safety_officer", "auditor")}
    configured = {
        tokens["emitter"]: "emitter",
        tokens["safety_officer"]: "safety_officer:demo-safety-officer",
        tokens["auditor"]: "auditor:demo-auditor",
    }
    token_file = settings.home / "demo-tokens.json"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.touch(mode=0o600)
    token_file.write_text(json.dumps(tokens, indent=2) + "\n")
    env = {
        "VIGIL_API_TOKENS": json.dumps({**settings.api_tokens, **configured}),
        # The demo's week of pathology passes in a minute: the estimator looks every few seconds.
        "VIGIL_ESTIMATE_INTERVAL": str(min(settings.estimate_interval, 5)),
    }
    processes = services(settings.home, env)
    for name, process in processes.items():
        process.stop()  # a demo always runs the code as it is now
        process.start()
        console.print(f"[bold]\\[vigil][/bold] {name}: started (log {process.logfile})")
    code = asyncio.run(run_demo(settings, tokens, inferences, seed, out, console))
    api = f"http://{settings.api_host}:{settings.api_port}"
    console.print(
        f"\nThe stack keeps running: the API at {api}, Prometheus at {settings.prometheus_url}; "
        "stop it all with `make down`.\n"
        f"The demo's API tokens (emitter, safety_officer, auditor) are in {token_file}; try:\n"
        f'  curl -H "Authorization: Bearer {tokens["safety_officer"]}" {api}/v1/incidents\n'
        f"The console for safety officers, auditors and governance committees: {api}/console/\n"
        f"  sign in as the demo's safety officer with the token {tokens['safety_officer']}"
    )
    raise typer.Exit(code)
