"""`vigil`: run, inspect and verify Vigil from the command line."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, get_args

import typer
from rich.console import Console
from rich.table import Table

from services.processes import services
from services.progress import console, progress_bar
from vigil.events import Harm, ReportType, RiskClass
from vigil.regulatory import REGIMES, RULES
from vigil_runtime.database import ROOT, engine_for, migrate
from vigil_runtime.observability import configure_logging
from vigil_runtime.settings import Settings, get_settings

if TYPE_CHECKING:
    from vigil.export import Period

app = typer.Typer(help="Vigil: post-market surveillance for clinical AI models.", no_args_is_help=True)
schema_app = typer.Typer(help="Event schemas.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
incident_app = typer.Typer(help="Incidents: deadlines, state, reports.", no_args_is_help=True)
app.add_typer(incident_app, name="incident")
drift_app = typer.Typer(help="Drift between a reference and a current sample.", no_args_is_help=True)
app.add_typer(drift_app, name="drift")
performance_app = typer.Typer(help="Subgroup performance: safety thresholds and equity.", no_args_is_help=True)
app.add_typer(performance_app, name="performance")
guideline_app = typer.Typer(help="Clinical guideline changes: which recommendations need a second look.",
                            no_args_is_help=True)  # fmt: skip
app.add_typer(guideline_app, name="guideline")
oversight_app = typer.Typer(help="Human oversight: reviews in time, before action, no autonomous actions.",
                            no_args_is_help=True)  # fmt: skip
app.add_typer(oversight_app, name="oversight")
export_app = typer.Typer(help="Regulatory exports.", no_args_is_help=True)
app.add_typer(export_app, name="export")
reference_app = typer.Typer(help="The reference a model version's drift is measured against.", no_args_is_help=True)
drift_app.add_typer(reference_app, name="reference")

STACK = ROOT / "deploy" / "local" / "stack.sh"


def choices(name: str, values: Iterable[str]) -> Any:
    """An Enum of fixed values, so that typer lists them in --help and names them in its error."""
    return Enum(name, {v: v for v in dict.fromkeys(values)}, type=str)


ISO = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M:%S%z"]

# Options with a fixed set of values list them in --help.
RegimeChoice = choices("RegimeChoice", REGIMES)
CategoryChoice = choices("CategoryChoice", (c for _, c in RULES))
HarmChoice = choices("HarmChoice", get_args(Harm))
ReportTypeChoice = choices("ReportTypeChoice", get_args(ReportType))
RiskClassChoice = choices("RiskClassChoice", get_args(RiskClass))
# vigil.drift.Method's values, written out: importing vigil.drift (numpy, scipy) would slow every command.
MethodChoice = choices("MethodChoice", ("psi", "ks", "wasserstein", "jensenshannon", "chisquare"))
FormatChoice = choices("FormatChoice", ("mir", "fda-3500a"))


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
def worker() -> None:
    """Run the Faust worker in the foreground."""
    from faust.worker import Worker

    from streams.worker import app as faust_app
    from vigil_runtime.observability import serve_metrics

    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)  # Faust keeps its data directory there
    configure_logging(settings)
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
    env = {"VIGIL_API_TOKENS": json.dumps({**settings.api_tokens, **configured})}
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
        f'  curl -H "Authorization: Bearer {tokens["safety_officer"]}" {api}/v1/incidents'
    )
    raise typer.Exit(code)


@app.command()
def replay() -> None:
    """Drop the projections and rebuild them from the event store."""
    from services.recorder.replay import replay_incidents

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


@incident_app.command("deadlines")
def incident_deadlines(
    regime: Annotated[RegimeChoice, typer.Option(help="the reporting regime")],
    classification: Annotated[
        CategoryChoice, typer.Option(help="the reporting category (which ones a regime has: vigil/regulatory.py)")
    ],
    aware: Annotated[str, typer.Option(help="awareness: a date (start of day, local) or an ISO time with zone")],
    country: Annotated[str, typer.Option(help="ISO 3166 country of the incident")] = "DE",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """When is the report due? The same core the worker's clocks use."""
    from datetime import datetime

    from vigil.regulatory import UnknownRule, deadline, zone

    try:
        moment = datetime.fromisoformat(aware)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone("US" if regime.value == "fda-803" else country))
        d = deadline(regime.value, classification.value, moment, country)
    except (UnknownRule, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    result = {
        "regime": d.regime,
        "classification": d.category,
        "legal_basis": d.citation,
        "trigger": d.trigger,
        "period": d.period,
        "aware_at": d.aware_at.isoformat(),
        "last_day": d.last_day.isoformat(),
        "due_before": d.due_at.isoformat(),
    }
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title="Reporting deadline", show_header=False)
    for key, value in result.items():
        table.add_row(key.replace("_", " "), value)
    Console().print(table)


def _with_service(service_class, run):
    """Runs `run(service)` with a service (IncidentService, ModelService) on its own producer and engine."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError

    async def go():
        settings = get_settings()
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        try:
            await producer.start()
        except KafkaConnectionError:
            await producer.stop()
            _unreachable("Kafka", settings.kafka_bootstrap)
        engine = engine_for(settings)
        try:
            return await run(service_class(settings, engine, producer))
        finally:
            await producer.stop()
            await engine.dispose()

    return _store_reachable(lambda: asyncio.run(go()))


def _with_engine(run):
    """Runs `run(engine)` for a query that only reads the event store: no Kafka needed."""

    async def go():
        engine = engine_for(get_settings())
        try:
            return await run(engine)
        finally:
            await engine.dispose()

    return _store_reachable(lambda: asyncio.run(go()))


def _store_reachable(call):
    try:
        return call()
    except ConnectionRefusedError:
        _unreachable("PostgreSQL", get_settings().database_url.rsplit("@", 1)[-1])


def _unreachable(what: str, where: str) -> NoReturn:
    console.print(f"[red]cannot reach {what} at {where}; is the stack up? (`vigil up`, `vigil status`)[/red]")
    raise typer.Exit(1)


def _incident_service(run):
    from services.incidents import IncidentService

    return _with_service(IncidentService, run)


@incident_app.command("new")
def incident_new(
    model: Annotated[str, typer.Option(help="model_id of a registered model")],
    version: Annotated[str, typer.Option(help="model version")],
    harm: Annotated[HarmChoice, typer.Option(help="the harm the reporter saw")],
    description: Annotated[str, typer.Option(help="what happened (no patient identifiers)")],
    country: Annotated[str, typer.Option(help="ISO 3166 country of the incident")],
    aware: Annotated[str, typer.Option(help="when the organisation became aware: ISO time with zone")],
    reporter_role: Annotated[str, typer.Option(help="who reports, e.g. clinician")] = "safety_officer",
) -> None:
    """Report an incident (as the API's POST /v1/incidents does)."""
    from datetime import UTC, datetime
    from uuid import uuid4

    from pydantic import ValidationError

    from vigil.events import IncidentReported
    from vigil.incidents import DomainError

    now = datetime.now(UTC)
    try:
        event = IncidentReported(
            event_id=uuid4(), occurred_at=now, incident_id=uuid4(), reporter_role=reporter_role, model_id=model,
            model_version=version, harm=harm.value, description=description, country=country,
            aware_at=datetime.fromisoformat(aware),
        )  # fmt: skip
        state = _incident_service(lambda service: service.report(event, now))
    except (ValidationError, DomainError, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    console.print(f"incident {state.incident_id} reported; status {state.status}")
    for clock in state.clocks:
        console.print(f"  {clock.regime} ({clock.citation}, provisional): due before {clock.due_at.isoformat()}")


@incident_app.command("show")
def incident_show(
    incident_id: str,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="ISO time with zone: state as Vigil knew it then")
    ] = None,
    by: Annotated[str, typer.Option(help="who is reading (recorded in the access audit)")] = "cli",
) -> None:
    """An incident's state and timeline, now or as of a moment. The read is recorded."""
    from datetime import UTC, datetime
    from uuid import UUID

    from services.incidents import UnknownIncident

    moment = datetime.fromisoformat(as_of) if as_of else None

    async def run(service):
        state = await service.state(UUID(incident_id), moment)
        await service.viewed(UUID(incident_id), by, "cli", moment, datetime.now(UTC))
        return state

    try:
        state = _incident_service(run)
    except UnknownIncident as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    out = Console()
    out.print(
        f"[bold]Incident {state.incident_id}[/bold]  {state.status}  model {state.model_id} {state.model_version}"
    )
    clocks = Table(title="Reporting clocks")
    for column in ("regime", "category", "legal basis", "due before", "status"):
        clocks.add_column(column)
    for c in state.clocks:
        status = "met" if state.clock_satisfied(c) else ("OVERDUE" if state.overdue() else "open")
        clocks.add_row(c.regime, c.category + (" (provisional)" if c.provisional else ""), c.citation,
                       c.due_at.isoformat(), status)  # fmt: skip
    out.print(clocks)
    timeline = Table(title="Timeline")
    for column in ("when", "event", "who", "what"):
        timeline.add_column(column)
    for h in state.history:
        timeline.add_row(h.occurred_at.isoformat(), h.event_type, f"{h.by or ''} {h.role or ''}".strip(), h.summary)
    out.print(timeline)


@incident_app.command("report")
def incident_report(
    incident_id: str,
    format: Annotated[FormatChoice, typer.Option(help="EU MIR or FDA 3500A-aligned")] = FormatChoice.mir,
    report_type: Annotated[ReportTypeChoice, typer.Option("--type", help="which report")] = ReportTypeChoice.initial,
    out: Annotated[Path, typer.Option(help="file to write: .pdf for PDF, else JSON")] = Path("report.json"),
    by: Annotated[str, typer.Option(help="who prepares it")] = "cli",
) -> None:
    """Write an EU MIR or FDA 3500A-aligned report for an incident as JSON or PDF."""
    from datetime import UTC, datetime
    from uuid import UUID

    from vigil.reports.builders import REPORT_FORMATS
    from vigil.reports.pdf import render_pdf

    format, report_type = format.value, report_type.value

    async def run(service):
        state = await service.state(UUID(incident_id))
        await service.viewed(UUID(incident_id), by, "cli", None, datetime.now(UTC))
        card = await service.model_card(state.model_id, state.model_version)
        return REPORT_FORMATS[format](state, card, report_type, by, datetime.now(UTC))

    built = _incident_service(run)
    data = render_pdf(built, incident_id) if out.suffix == ".pdf" else built.model_dump_json(indent=2).encode()
    out.write_bytes(data)
    console.print(f"wrote {out} ({len(data)} bytes)")


def _read_table(path: Path):
    import pandas as pd

    if not path.exists():
        console.print(f"[red]{path}: no such file[/red]")
        raise typer.Exit(2)
    return pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)


@drift_app.command("compare")
def drift_compare(
    reference: Annotated[Path, typer.Option(help="reference sample, CSV or Parquet")],
    current: Annotated[Path, typer.Option(help="current sample, CSV or Parquet")],
    method: Annotated[MethodChoice | None, typer.Option(help="one method for every feature; default: by size")] = None,
    drift_share: Annotated[float, typer.Option(help="share of drifted features that makes the dataset drift")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Per-feature drift, binned as Evidently bins, so results compare one to one."""
    from vigil.drift import DriftInputError, dataset_drift

    chosen = method.value if method else None
    try:
        result = dataset_drift(_read_table(reference), _read_table(current), chosen, drift_share=drift_share)  # type: ignore[arg-type]
    except DriftInputError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    table = Table(
        title=f"Drift: {result.share_drifted:.0%} of features drifted (dataset drift: {result.dataset_drift})"
    )
    for column in ("feature", "kind", "method", "score", "threshold", "drifted", "n ref / cur"):
        table.add_column(column)
    for f in result.features:
        table.add_row(f.name, f.kind, f.method, f"{f.score:.4g}", f"{f.threshold:g}",
                      "[red]yes[/red]" if f.drifted else "no", f"{f.reference_size} / {f.current_size}")  # fmt: skip
    Console().print(table)


@reference_app.command("set")
def reference_set(
    model: Annotated[str, typer.Option(help="model_id of a registered model")],
    version: Annotated[str, typer.Option(help="model version")],
    file: Annotated[Path, typer.Option(help="reference sample, CSV or Parquet: a column per feature")],
) -> None:
    """Record a reference profile from a file; the worker measures the version against it from now on."""
    from datetime import UTC, datetime

    from services.models import ModelService
    from vigil.drift import DriftInputError
    from vigil.incidents import DomainError
    from vigil.policy import PolicyError, load_policy

    try:
        policy = load_policy(get_settings().policy_file)
        frame = _read_table(file)
        event = _with_service(
            ModelService,
            lambda models: models.set_reference(policy, model, version, frame, file.name, datetime.now(UTC)),
        )
    except (DriftInputError, DomainError, PolicyError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    table = Table(title=f"Drift reference of {model} {version} (event {event.event_id})")
    for column in ("feature", "kind", "values", "missing"):
        table.add_column(column)
    for p in event.profiles:
        table.add_row(p.feature, p.kind, str(p.n), str(p.missing))
    Console().print(table)


def _ask_model(ask):
    """`ask(engine, policy, now)` of a query over the event store; an unknown model exits 1 with its message."""
    from datetime import UTC, datetime

    from services.models import UnknownModel
    from vigil.policy import load_policy

    policy = load_policy(get_settings().policy_file)
    try:
        return _with_engine(lambda engine: ask(engine, policy, datetime.now(UTC)))
    except UnknownModel as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None


@performance_app.command("show")
def performance_show(
    model: Annotated[str, typer.Option(help="model_id of a registered model")],
    by: Annotated[str, typer.Option(help="subgroup attributes, comma-separated")] = "",
    window: Annotated[int, typer.Option(help="rolling window in days; 0 for since release")] = 30,
    version: Annotated[str | None, typer.Option(help="one model version")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Live subgroup performance from the event store (as GET /v1/models/{id}/performance)."""
    from services.models import performance
    from services.performance_view import print_performance
    from vigil.performance import attributes_of

    result = _ask_model(
        lambda engine, policy, now: performance(engine, policy, model, version, attributes_of(by), window or None, now)
    )
    if as_json:
        print(json.dumps(result, indent=2))
        return
    span = f"last {window} days" if window else "since release"
    print_performance(
        Console(), result, f"{model} {version or '(all versions)'}: {result['outcomes']} outcomes, {span}"
    )
    Console().print(f"outcomes without a recorded inference: {result['outcomes_without_inference']}")


@oversight_app.command("show")
def oversight_show(
    model: Annotated[str, typer.Option(help="model_id of a registered model")],
    by: Annotated[str, typer.Option(help="one attribute: deployment, or a subgroup attribute such as site")] = "",
    window: Annotated[int, typer.Option(help="rolling window in days; 0 for since release")] = 7,
    version: Annotated[str | None, typer.Option(help="one model version")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Human oversight from the event store (as GET /v1/models/{id}/oversight)."""
    from services.models import oversight
    from services.oversight_view import print_oversight

    result = _ask_model(
        lambda engine, policy, now: oversight(engine, policy, model, version, by.strip() or None, window or None, now)
    )
    if as_json:
        print(json.dumps(result, indent=2))
        return
    span = f"last {window} days" if window else "since release"
    print_oversight(
        Console(), result, f"{model} {version or '(all versions)'}: oversight, {span} "
        f"(reviews due within {result['review_within_minutes']} min)",
    )  # fmt: skip


@guideline_app.command("audit")
def guideline_audit_command(
    guideline_id: Annotated[str, typer.Argument(help="the guideline_id of a recorded GuidelineChanged event")],
    lookback: Annotated[int, typer.Option(help="days before the change whose open recommendations count")] = 30,
    cases: Annotated[Path | None, typer.Option(help="write the recommendations to re-review to this CSV")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Recommendations to re-review after a guideline change (as GET /v1/guidelines/{id}/audit)."""
    from services.guidelines import UnknownGuideline, guideline_audit
    from services.guidelines_view import print_audit, write_cases

    try:
        result = _with_engine(lambda engine: guideline_audit(engine, guideline_id, lookback))
    except UnknownGuideline as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    if cases is not None:
        write_cases(cases, result["cases"])
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print_audit(Console(), result)
    if cases is not None:
        Console().print(f"{len(result['cases'])} recommendations to re-review written to {cases}")


@performance_app.command("compute")
def performance_compute(
    predictions: Annotated[Path, typer.Option(help="CSV/Parquet: inference_id, label, optional score, attributes")],
    outcomes: Annotated[Path, typer.Option(help="CSV/Parquet: inference_id, label (the truth)")],
    positive: Annotated[list[str], typer.Option(help="the critical label(s), judged one-vs-rest; repeatable")],
    by: Annotated[str, typer.Option(help="subgroup attributes (columns), comma-separated")] = "",
    risk_class: Annotated[RiskClassChoice, typer.Option(help="WHO risk class")] = RiskClassChoice.high,
    model: Annotated[str | None, typer.Option(help="apply this model's overrides from the policy file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Validate a model on your own population before go-live: the same core as the live monitoring."""
    from services.performance_view import print_performance
    from vigil.performance import PerformanceInputError, attributes_of, pairs_from_files, report, tally
    from vigil.policy import PolicyError, load_policy

    attributes = attributes_of(by)
    try:
        policy = load_policy(get_settings().policy_file).for_model(model or "*").performance
        rules = policy.rules(risk_class.value)
        pairs, unmatched = pairs_from_files(_read_table(predictions), _read_table(outcomes), attributes)
    except (PerformanceInputError, PolicyError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    if not pairs:
        console.print("[red]no prediction matches an outcome by inference_id[/red]")
        raise typer.Exit(2)
    result = report(tally(pairs, positive, attributes, len(attributes) or 1), rules) | {"unmatched": unmatched}
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print_performance(Console(), result, f"Performance on {len(pairs)} outcomes (risk class {risk_class.value})")
    Console().print(
        f"unmatched: {unmatched['predictions_without_outcome']} predictions without outcome, "
        f"{unmatched['outcomes_without_prediction']} outcomes without prediction"
    )


@export_app.command("quarterly")
def export_quarterly(
    quarter: Annotated[str | None, typer.Option(help="e.g. 2026Q4; default: the current quarter")] = None,
    out: Annotated[Path, typer.Option(help="folder to write the export folder into")] = Path("out"),
) -> None:
    """The quarter's surveillance record for a regulator: events, signals, incidents, performance,
    a PDF summary, and a manifest with each file's SHA-256 and the verified chain head."""
    from vigil.export import current_quarter
    from vigil.export import quarter as quarter_period

    now = datetime.now(UTC)
    _export(lambda: quarter_period(quarter or current_quarter(now)), out, now)


@export_app.command("period")
def export_period(
    since: Annotated[datetime, typer.Option(help="start, inclusive; UTC unless it names a zone", formats=ISO)],
    until: Annotated[datetime | None, typer.Option(help="end, exclusive; default: now", formats=ISO)] = None,
    out: Annotated[Path, typer.Option(help="folder to write the export folder into")] = Path("out"),
) -> None:
    """The same export for any span of time, e.g. an auditor's request or the weeks since a release."""
    from vigil.export import span

    now = datetime.now(UTC)
    _export(lambda: span(_in_utc_unless_zoned(since), _in_utc_unless_zoned(until or now)), out, now)


def _in_utc_unless_zoned(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _export(period: Callable[[], Period], out: Path, now: datetime) -> None:
    """Bounds are checked inside, so a bad quarter or span is reported like a broken chain."""
    from services.export import ChainBroken, run_export
    from vigil.export import QuarterError
    from vigil.policy import load_policy

    settings = get_settings()
    try:
        folder = asyncio.run(run_export(settings, load_policy(settings.policy_file), period(), out, now))
    except (QuarterError, ChainBroken) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2 if isinstance(error, QuarterError) else 1) from None
    console.print(f"[green]export written to {folder}[/green]")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(app())
