"""`vigil action`: field safety corrective actions and CAPA: start, notice, check, list."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import typer
from rich.table import Table

from services.cli.app import app
from services.cli.common import domain_errors, print_json, with_service
from services.progress import console

action_app = typer.Typer(help="Corrective actions (FSCA, CAPA): start, notice, check, list.", no_args_is_help=True)
app.add_typer(action_app, name="action")
By = Annotated[str, typer.Option(help="who records it (a staff identifier, never a patient)")]


def _run(run):
    from services.corrective_actions import CorrectiveActionService

    with domain_errors():
        return with_service(CorrectiveActionService, run)


def _show(action) -> None:
    console.print(f"action {action.action_id}: {action.describe()} ({action.status.replace('_', ' ')})")


@action_app.command("start")
def action_start(
    kind: Annotated[str, typer.Option(help="fsca (field safety corrective action) or capa")],
    title: Annotated[str, typer.Option(help="what the action does, in a line")],
    description: Annotated[str, typer.Option(help="why and how")],
    model: Annotated[str, typer.Option(help="model_id of a registered model")],
    version: Annotated[list[str] | None, typer.Option(help="a model version it concerns (repeat)")] = None,
    deployment: Annotated[list[str] | None, typer.Option(help="a deployment it concerns (repeat)")] = None,
    incident: Annotated[list[str] | None, typer.Option(help="an incident it answers (repeat)")] = None,
    by: By = "cli",
) -> None:
    """Start a corrective action, linked to incidents, model versions and deployments."""
    from services.corrective_actions import NewAction

    with domain_errors():
        body = NewAction.model_validate({"kind": kind, "title": title, "description": description, "model_id": model,
                                         "model_versions": version or [], "deployments": deployment or [],
                                         "incident_ids": incident or []})  # fmt: skip
    _show(_run(lambda s: s.start(body, by, "safety_officer", datetime.now(UTC))))


@action_app.command("notice")
def action_notice(
    action_id: str,
    reference: Annotated[str, typer.Option(help="the notice's reference")],
    summary: Annotated[str, typer.Option(help="what it tells users")],
    country: Annotated[list[str] | None, typer.Option(help="a country it went to (repeat)")] = None,
    by: By = "cli",
) -> None:
    """Record a field safety notice issued for an action."""
    from services.corrective_actions import Notice

    with domain_errors():
        body = Notice.model_validate({"reference": reference, "summary": summary, "countries": country or []})
    _show(_run(lambda s: s.notice(UUID(action_id), body, by, "safety_officer", datetime.now(UTC))))


@action_app.command("check")
def action_check(
    action_id: str,
    evidence: Annotated[str, typer.Option(help="what shows it worked, or did not")],
    effective: Annotated[bool, typer.Option("--effective/--not-effective", help="the verdict")] = True,
    by: By = "cli",
) -> None:
    """Record an effectiveness check of an action."""
    from services.corrective_actions import Check

    body = Check(effective=effective, evidence=evidence)
    _show(_run(lambda s: s.check(UUID(action_id), body, by, "safety_officer", datetime.now(UTC))))


@action_app.command("list")
def action_list(
    model: Annotated[str | None, typer.Option(help="one model's actions")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Corrective actions with their notices and verdicts."""
    from pydantic import RootModel

    from vigil.corrective_actions import CorrectiveAction

    found = list(_run(lambda s: s.actions(model)).values())
    if as_json:
        print_json(RootModel[list[CorrectiveAction]](found))
        return
    table = Table(title="Corrective actions")
    for column in ("action", "kind", "model", "title", "incidents", "notices", "status"):
        table.add_column(column)
    for a in found:
        s = a.started
        table.add_row(str(a.action_id)[:8], s.kind, s.model_id, s.title, str(len(s.incident_ids)),
                      ", ".join(n.reference for n in a.notices) or "—", a.status.replace("_", " "))  # fmt: skip
    console.print(table)
