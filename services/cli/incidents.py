"""`vigil incident`: deadlines, reporting an incident, its state and timeline, its reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.cli.app import app
from services.cli.common import (
    CategoryChoice,
    FormatChoice,
    HarmChoice,
    RegimeChoice,
    ReportTypeChoice,
    domain_errors,
    incident_service,
)
from services.progress import console

incident_app = typer.Typer(help="Incidents: deadlines, state, reports.", no_args_is_help=True)
app.add_typer(incident_app, name="incident")


@incident_app.command("deadlines")
def incident_deadlines(
    regime: Annotated[RegimeChoice, typer.Option(help="the reporting regime")],
    classification: Annotated[
        CategoryChoice, typer.Option(help="the reporting category (which ones a regime has: vigil/regulatory.py)")
    ],
    aware: Annotated[str, typer.Option(help="awareness: a date (start of day, local) or an ISO time with zone")],
    country: Annotated[str, typer.Option(help="ISO 3166 country of the incident")] = "DE",
    model: Annotated[str, typer.Option(help="whose policy's counting rule is in force (reporting.counting)")] = "*",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """When is the report due? The same core the worker's clocks use: under the counting rule in
    force, with the other rule's day beside it."""

    from services.cli.common import get_settings
    from vigil.policy import load_policy
    from vigil.regulatory import COUNTING_RULES, deadline, other_rule, zone

    with domain_errors():
        counting = load_policy(get_settings().policy_file).for_model(model).reporting.counting
        moment = datetime.fromisoformat(aware)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone("US" if regime.value == "fda-803" else country))
        d = deadline(regime.value, classification.value, moment, country, counting=counting)
    result = {
        "regime": d.regime,
        "classification": d.category,
        "legal_basis": d.citation,
        "trigger": d.trigger,
        "period": d.period,
        "aware_at": d.aware_at.isoformat(),
        "counting": d.counting,
        "counting_rule": COUNTING_RULES[d.counting],
        "last_day": d.last_day.isoformat(),
        "due_before": d.due_at.isoformat(),
        "other_counting": other_rule(d.counting),
        "other_last_day": d.other_last_day.isoformat(),
        "other_due_before": d.other_due_at.isoformat(),
    }
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title="Reporting deadline", show_header=False)
    for key, value in result.items():
        table.add_row(key.replace("_", " "), value)
    Console().print(table)


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
    from uuid import uuid4

    from services.cli.common import get_settings
    from vigil.events import IncidentReported
    from vigil.policy import load_policy

    now = datetime.now(UTC)
    with domain_errors():
        counting = load_policy(get_settings().policy_file).for_model(model).reporting.counting
        event = IncidentReported(
            event_id=uuid4(), occurred_at=now, incident_id=uuid4(), reporter_role=reporter_role, model_id=model,
            model_version=version, harm=harm.value, description=description, country=country,
            aware_at=datetime.fromisoformat(aware), counting=counting,
        )  # fmt: skip
        state = incident_service(lambda service: service.report(event, now))
    console.print(f"incident {state.incident_id} reported; status {state.status}")
    for clock in state.clocks:
        console.print(f"  {clock.regime} ({clock.citation}, provisional): due before {clock.due_at.isoformat()}"
                      f" ({clock.counting or 'regulation_1182_71'})")  # fmt: skip


@incident_app.command("show")
def incident_show(
    incident_id: str,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="ISO time with zone: state as Vigil knew it then")
    ] = None,
    by: Annotated[str, typer.Option(help="who is reading (recorded in the access audit)")] = "cli",
) -> None:
    """An incident's state and timeline, now or as of a moment. The read is recorded."""
    from uuid import UUID

    moment = datetime.fromisoformat(as_of) if as_of else None

    async def run(service):
        state = await service.state(UUID(incident_id), moment)
        await service.viewed(UUID(incident_id), by, "cli", moment, datetime.now(UTC))
        return state

    with domain_errors():
        state = incident_service(run)
    out = Console()
    out.print(
        f"[bold]Incident {state.incident_id}[/bold]  {state.status}  model {state.model_id} {state.model_version}"
    )
    from vigil.regulatory import COUNTING_RULES

    clocks = Table(title="Reporting clocks", caption=f"counted by {COUNTING_RULES[state.counting]}")
    for column in ("regime", "category", "legal basis", "last day", "other rule's last day", "due before", "status"):
        clocks.add_column(column)
    for c in state.clocks:
        status = "met" if state.clock_satisfied(c) else ("OVERDUE" if state.overdue() else "open")
        other = str(c.other_last_day) if c.other_last_day and c.other_last_day != c.last_day else "the same"
        clocks.add_row(c.regime, c.category + (" (provisional)" if c.provisional else ""), c.citation,
                       str(c.last_day), other, c.due_at.isoformat(), status)  # fmt: skip
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
    from uuid import UUID

    from services.rendering.incident_pdf import render_pdf

    format, report_type = format.value, report_type.value

    def run(service):
        return service.report_for_regulator(UUID(incident_id), format, report_type, by, "cli", datetime.now(UTC))

    built = incident_service(run)
    data = render_pdf(built, incident_id) if out.suffix == ".pdf" else built.model_dump_json(indent=2).encode()
    out.write_bytes(data)
    console.print(f"wrote {out} ({len(data)} bytes)")
