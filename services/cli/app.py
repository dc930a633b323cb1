"""The root `vigil` command, which every command group below adds itself to."""

from __future__ import annotations

import typer

app = typer.Typer(help="Vigil: post-market surveillance for clinical AI models.", no_args_is_help=True)
