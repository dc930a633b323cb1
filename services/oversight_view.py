"""Human oversight as people read it: a row per group, then the policy's verdict."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def print_oversight(out: Console, result: dict, title: str) -> None:
    table = Table(title=title)
    for column in ("group", "outputs", "in time / late / never", "pending", "reviewed in time (95% CI)", "reviews",
                   "overridden (95% CI)", "acted before review", "autonomous"):  # fmt: skip
        table.add_column(column)

    def share(row: dict, name: str) -> str:
        value, ci = row[name], row[f"{name}_ci"]
        return "—" if value is None else f"{value:.1%} ({ci[0]:.1%}–{ci[1]:.1%})"

    for row in result["rows"]:
        table.add_row(
            row["group"], str(row["outputs"]), f"{row['in_time']} / {row['late']} / {row['unreviewed']}",
            str(row["pending"]), share(row, "coverage"), str(row["reviews"]), share(row, "override_share"),
            str(row["acted_before_review"]), str(row["autonomous"]),
        )  # fmt: skip
    out.print(table)
    for line in result["verdict"]:
        out.print(escape(line), style="green" if line == "within policy" else "red")
