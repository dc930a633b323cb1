"""`vigil schema`: the event schemas as JSON Schema files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from services.cli.app import app
from services.progress import console
from vigil_runtime.database import ROOT

schema_app = typer.Typer(help="Event schemas.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")


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
