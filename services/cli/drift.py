"""`vigil drift`: drift between two samples, and a model version's reference."""

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
    MethodChoice,
    domain_errors,
    read_table,
    with_service,
)
from vigil_runtime.settings import get_settings

drift_app = typer.Typer(help="Drift between a reference and a current sample.", no_args_is_help=True)
app.add_typer(drift_app, name="drift")
reference_app = typer.Typer(help="The reference a model version's drift is measured against.", no_args_is_help=True)
drift_app.add_typer(reference_app, name="reference")


@drift_app.command("compare")
def drift_compare(
    reference: Annotated[Path, typer.Option(help="reference sample, CSV or Parquet")],
    current: Annotated[Path, typer.Option(help="current sample, CSV or Parquet")],
    method: Annotated[MethodChoice | None, typer.Option(help="one method for every feature; default: by size")] = None,
    drift_share: Annotated[float, typer.Option(help="share of drifted features that makes the dataset drift")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Per-feature drift, binned as Evidently bins, so results compare one to one."""
    from vigil.drift import dataset_drift

    chosen = method.value if method else None
    with domain_errors():
        result = dataset_drift(read_table(reference), read_table(current), chosen, drift_share=drift_share)
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

    from services.models import ModelService
    from vigil.policy import load_policy

    with domain_errors():
        policy = load_policy(get_settings().policy_file)
        frame = read_table(file)
        event = with_service(
            ModelService,
            lambda models: models.set_reference(policy, model, version, frame, file.name, datetime.now(UTC)),
        )
    table = Table(title=f"Drift reference of {model} {version} (event {event.event_id})")
    for column in ("feature", "kind", "values", "missing"):
        table.add_column(column)
    for p in event.profiles:
        table.add_row(p.feature, p.kind, str(p.n), str(p.missing))
    Console().print(table)
