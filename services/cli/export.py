"""`vigil export`: the surveillance record for a regulator, for a quarter or any period."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from services.cli.app import app
from services.cli.common import (
    ISO,
    domain_errors,
)
from services.progress import console
from vigil_runtime.settings import get_settings

if TYPE_CHECKING:
    from vigil.export import Period

export_app = typer.Typer(help="Regulatory exports.", no_args_is_help=True)
app.add_typer(export_app, name="export")


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


@export_app.command("psur")
def export_psur(
    model: Annotated[str, typer.Option(help="model_id of a registered model")],
    period: Annotated[str, typer.Option(help="the period's last calendar year, e.g. 2026")],
    out: Annotated[Path, typer.Option(help="folder to write psur-<model>-<period>.json and .pdf into")] = Path("out"),
) -> None:
    """The model's periodic safety update report (MDR Art. 86) as JSON and PDF, following MDCG
    2022-21 Annex I: one calendar year for high-risk models, two otherwise (policy: reporting.psur_years)."""
    from services.cli.common import ask_model
    from services.psur import psur
    from services.rendering.psur_pdf import render_psur_pdf

    report = ask_model(lambda engine, policy, now: psur(engine, policy, model, period, now))
    out.mkdir(parents=True, exist_ok=True)
    stem = f"psur-{model}-{report.period['name']}"
    (out / f"{stem}.json").write_text(report.model_dump_json(indent=2) + "\n")
    (out / f"{stem}.pdf").write_bytes(render_psur_pdf(report))
    console.print(f"{out / stem}.json and .pdf: {report.executive_summary[-1]}")


@export_app.command("audit-fhir")
def export_audit_fhir(
    since: Annotated[datetime, typer.Option(help="recorded since; UTC unless it names a zone", formats=ISO)],
    out: Annotated[Path, typer.Option(help="the NDJSON file to write")] = Path("out/audit.ndjson"),
) -> None:
    """Accesses to incident data and incident changes as FHIR R4 AuditEvents (IHE BALP), one per
    line (FHIR bulk data NDJSON), for a hospital's audit repository."""
    from services.audit import AuditService
    from services.audit_fhir import ndjson
    from services.cli.common import domain_errors, with_service

    with domain_errors():
        found = with_service(AuditService, lambda audit: audit.trail(_in_utc_unless_zoned(since)))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(ndjson(found))
    console.print(f"{len(found)} AuditEvents written to {out}")


def _in_utc_unless_zoned(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _export(period: Callable[[], Period], out: Path, now: datetime) -> None:
    """Bounds are checked inside, so a bad quarter or span is reported like a broken chain."""
    from services.export import run_export
    from vigil.policy import load_policy

    settings = get_settings()
    with domain_errors():
        folder = asyncio.run(run_export(settings, load_policy(settings.policy_file), period(), out, now))
    console.print(f"[green]export written to {folder}[/green]")
