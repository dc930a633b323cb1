"""`vigil guideline`: which recommendations need a second look after a guideline change."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.cli.app import app
from services.cli.common import domain_errors, print_json, with_engine

guideline_app = typer.Typer(help="Clinical guideline changes: which recommendations need a second look.",
                            no_args_is_help=True)  # fmt: skip
app.add_typer(guideline_app, name="guideline")


@guideline_app.command("audit")
def guideline_audit_command(
    guideline_id: Annotated[str, typer.Argument(help="the guideline_id of a recorded GuidelineChanged event")],
    lookback: Annotated[int, typer.Option(help="days before the change whose open recommendations count")] = 30,
    cases: Annotated[Path | None, typer.Option(help="write the recommendations to re-review to this CSV")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Recommendations to re-review after a guideline change (as GET /v1/guidelines/{id}/audit)."""
    from services.guidelines import guideline_audit
    from services.guidelines_view import print_audit, write_cases

    with domain_errors():
        result = with_engine(lambda engine: guideline_audit(engine, guideline_id, lookback))
    if cases is not None:
        write_cases(cases, result.cases)
    if as_json:
        print_json(result)
        return
    print_audit(Console(), result)
    if cases is not None:
        Console().print(f"{len(result.cases)} recommendations to re-review written to {cases}")
