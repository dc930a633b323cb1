"""`vigil`: run, inspect and verify Vigil from the command line. One module per command group
(stack, store, schema, incidents, drift, performance, oversight, guidelines, export); `common`
holds what they share, among it the one table from domain errors to exit codes."""

from services.cli import drift, export, guidelines, incidents, oversight, performance, schema, stack, store  # noqa: F401
from services.cli.app import app

__all__ = ["app"]
