"""`vigil model`: the registry as commands (register, release, retire, list, show) and the live card."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.cli.app import app
from services.cli.common import CardFormat, RiskClassChoice, ask_model, domain_errors, print_json, with_service
from services.progress import console

model_app = typer.Typer(help="The model registry: register, release, retire, list, show; model cards.",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(model_app, name="model")

AsOf = Annotated[str | None, typer.Option("--as-of", help="ISO time with zone: as Vigil knew it then")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON (what the API answers)")]


def registry(run):
    from services.registry import RegistryService

    with domain_errors():
        return with_service(RegistryService, run)


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    with domain_errors():
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError(f"{value}: give the time zone, e.g. {value}+00:00")
    return moment


@model_app.command("register")
def model_register(
    model: Annotated[str, typer.Argument(help="model_id: how events name the model")],
    name: Annotated[str, typer.Option(help="the product name")],
    manufacturer: Annotated[str, typer.Option(help="who makes it")],
    use_case: Annotated[str, typer.Option(help="e.g. mammography_screening")],
    risk_class: Annotated[RiskClassChoice, typer.Option(help="WHO risk class: decides the thresholds")],
    intended_use: Annotated[str, typer.Option(help="what it is for, and for whom")],
    label: Annotated[list[str] | None, typer.Option(help="a label of its label set; repeatable")] = None,
    critical: Annotated[list[str] | None, typer.Option(help="a critical label (in the label set); repeatable")] = None,
    out_of_scope: Annotated[list[str] | None, typer.Option(help="a use it is not for; repeatable")] = None,
    country: Annotated[list[str] | None, typer.Option(help="ISO 3166 country it is deployed in; repeatable")] = None,
    patient_facing: Annotated[bool, typer.Option(help="patients talk to it directly")] = False,
    as_json: AsJson = False,
) -> None:
    """Register a model (as POST /v1/models)."""
    from uuid import uuid4

    from vigil.events import ModelRegistered

    with domain_errors():
        event = ModelRegistered(
            event_id=uuid4(), occurred_at=datetime.now(UTC), model_id=model, name=name, manufacturer=manufacturer,
            use_case=use_case, risk_class=risk_class.value, intended_use=intended_use, labels=label or [],
            critical_labels=critical or [], out_of_scope_uses=out_of_scope or [], countries=country or [],
            patient_facing=patient_facing,
        )  # fmt: skip
    record = registry(lambda service: service.register(event))
    if as_json:
        print_json(record)
        return
    console.print(f"model {model} registered ({risk_class.value} risk); release a version with `vigil model release`")


@model_app.command("release")
def model_release(
    model: Annotated[str, typer.Argument(help="model_id of a registered model")],
    version: Annotated[str, typer.Option(help="the version released")],
    changes: Annotated[str, typer.Option(help="what changed since the last version")] = "",
    training_summary: Annotated[str, typer.Option(help="the training data, in words")] = "",
    population: Annotated[list[str] | None, typer.Option(help="a population trained on; repeatable")] = None,
    site: Annotated[list[str] | None, typer.Option(help="a site the training data came from; repeatable")] = None,
    period: Annotated[str | None, typer.Option(help="training data period, FROM..TO (ISO dates)")] = None,
    size: Annotated[int | None, typer.Option(help="training examples")] = None,
    validation: Annotated[str, typer.Option(help="how and on whom it was validated")] = "",
    limitation: Annotated[list[str] | None, typer.Option(help="a known limitation; repeatable")] = None,
    released_at: Annotated[str | None, typer.Option(help="ISO time with zone; default now")] = None,
    as_json: AsJson = False,
) -> None:
    """Release a version of a model (as POST /v1/models/{id}/versions)."""
    from uuid import uuid4

    from vigil.events import ModelVersionReleased, TrainingData

    with domain_errors():
        start, end = _period(period)
        data = TrainingData(populations=population or [], sites=site or [], period_start=start, period_end=end,
                            size=size)  # fmt: skip
        event = ModelVersionReleased(
            event_id=uuid4(), occurred_at=datetime.now(UTC), model_id=model, model_version=version,
            released_at=_moment(released_at) or datetime.now(UTC), changes=changes,
            training_data_summary=training_summary, training_data=data if data != TrainingData() else None,
            validation_summary=validation, limitations=limitation or [],
        )  # fmt: skip
    record = registry(lambda service: service.release(event))
    if as_json:
        print_json(record)
        return
    console.print(f"{model} {version} released; {len(record.versions)} version(s) in its history")


def _period(value: str | None) -> tuple[date | None, date | None]:
    if not value:
        return None, None
    start, sep, end = value.partition("..")
    if not sep:
        raise ValueError(f"--period {value!r}: give FROM..TO, e.g. 2019-01-01..2023-12-31")
    return date.fromisoformat(start), date.fromisoformat(end)


@model_app.command("retire")
def model_retire(
    model: Annotated[str, typer.Argument(help="model_id of a registered model")],
    reason: Annotated[str, typer.Option(help="why it is taken out of service")],
    replaced_by: Annotated[str | None, typer.Option(help="the model_id that takes over")] = None,
    retired_at: Annotated[str | None, typer.Option(help="ISO time with zone; default now")] = None,
    as_json: AsJson = False,
) -> None:
    """Retire a model: its later inferences are refused (as POST /v1/models/{id}/retire)."""
    from uuid import uuid4

    from vigil.events import ModelRetired

    now = datetime.now(UTC)
    with domain_errors():
        event = ModelRetired(event_id=uuid4(), occurred_at=now, model_id=model, retired_at=_moment(retired_at) or now,
                             reason=reason, replaced_by=replaced_by)  # fmt: skip
    record = registry(lambda service: service.retire(event, now))
    if as_json:
        print_json(record)
        return
    console.print(f"{model} retired; its inferences from {event.retired_at.isoformat()} on are refused")


@model_app.command("list")
def model_list(as_of: AsOf = None, as_json: AsJson = False) -> None:
    """Every registered model (as GET /v1/models)."""
    from pydantic import RootModel

    from vigil.registry import ModelRecord

    moment = _moment(as_of)
    models = registry(lambda service: service.models(moment))
    if as_json:
        print_json(RootModel[list[ModelRecord]](models))
        return
    table = Table(title="Registered models" + (f" as of {moment.isoformat()}" if moment else ""))
    for column in ("model", "name", "use case", "risk", "current version", "versions", "status"):
        table.add_column(column)
    for m in models:
        r = m.registration
        status = f"retired {m.retired.retired_at:%Y-%m-%d}" if m.retired else "in service"
        table.add_row(m.model_id, r.name, r.use_case, r.risk_class, m.current_version or "none released",
                      str(len(m.versions)), status)  # fmt: skip
    Console().print(table)


@model_app.command("show")
def model_show(
    model: Annotated[str, typer.Argument(help="model_id of a registered model")],
    as_of: AsOf = None,
    as_json: AsJson = False,
) -> None:
    """A model's registration and version history (as GET /v1/models/{id})."""
    moment = _moment(as_of)
    record = registry(lambda service: service.model(model, moment))
    if as_json:
        print_json(record)
        return
    r, out = record.registration, Console()
    out.print(f"[bold]{r.name}[/bold] ({record.model_id}) by {r.manufacturer}: {r.use_case}, {r.risk_class} risk")
    out.print(f"intended use: {r.intended_use}")
    if r.out_of_scope_uses:
        out.print(f"not for: {', '.join(r.out_of_scope_uses)}")
    out.print(f"labels: {', '.join(r.labels) or 'none'}; critical: {', '.join(r.critical_labels) or 'none'}")
    if record.retired:
        successor = f", replaced by {record.retired.replaced_by}" if record.retired.replaced_by else ""
        out.print(f"[red]retired {record.retired.retired_at.isoformat()}: {record.retired.reason}{successor}[/red]")
    history = Table(title="Version history")
    for column in ("version", "released", "changes", "limitations"):
        history.add_column(column)
    for v in record.versions:
        history.add_row(v.model_version, v.released_at.isoformat(), v.changes, "; ".join(v.limitations))
    out.print(history)


@model_app.command("card")
def model_card(
    model: Annotated[str, typer.Argument(help="model_id of a registered model")],
    version: Annotated[str | None, typer.Option(help="a released version; default: the current one")] = None,
    as_of: AsOf = None,
    format: Annotated[CardFormat, typer.Option(help="md, html, json or pdf")] = CardFormat.md,
    out: Annotated[Path | None, typer.Option(help="write it here (a pdf needs it)")] = None,
) -> None:
    """The live model card (as GET /v1/models/{id}/card): registry, post-market evidence, versions."""
    from services.model_card import model_card as card_of
    from services.rendering import model_card as rendering

    moment = _moment(as_of)
    card = ask_model(lambda engine, policy, now: card_of(engine, policy, model, version, moment, now))
    kind = format.value
    body = (rendering.pdf(card) if kind == "pdf" else
            (card.model_dump_json(indent=2) if kind == "json" else rendering.RENDER[kind](card)).encode())  # fmt: skip
    if out is None and kind == "pdf":
        console.print("[red]a PDF needs --out FILE[/red]")
        raise typer.Exit(2)
    if out is None:
        print(body.decode(), end="" if kind != "json" else "\n")
        return
    out.write_bytes(body)
    console.print(f"model card of {model} {card.details.version or ''} written to {out}")
