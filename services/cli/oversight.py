"""`vigil oversight`: human oversight from the event store."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from services.cli.app import app
from services.cli.common import ask_model, print_json

oversight_app = typer.Typer(help="Human oversight: reviews in time, before action, no autonomous actions.",
                            no_args_is_help=True)  # fmt: skip
app.add_typer(oversight_app, name="oversight")


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

    result = ask_model(
        lambda engine, policy, now: oversight(engine, policy, model, version, by.strip() or None, window or None, now)
    )
    if as_json:
        print_json(result)
        return
    span = f"last {window} days" if window else "since release"
    print_oversight(
        Console(), result, f"{model} {version or '(all versions)'}: oversight, {span} "
        f"(reviews due within {result.review_within_minutes} min)",
    )  # fmt: skip
