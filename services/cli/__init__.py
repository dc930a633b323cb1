"""`vigil`: run, inspect and verify Vigil from the command line. One module per command group
(stack, store, schema, incidents, actions, model, drift, performance, oversight, guidelines, export); `common`
holds what they share, among it the one table from domain errors to exit codes."""

from services.cli import (  # noqa: F401  (importing registers the command groups)
    actions,
    drift,
    export,
    guidelines,
    incidents,
    model,
    oversight,
    performance,
    schema,
    stack,
    store,
)
from services.cli.app import app

__all__ = ["app"]
