"""Subgroup performance as people read it: a table with intervals and the verdict per row."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def print_performance(out: Console, result: dict, title: str) -> None:
    """The rows as a table (sensitivity and specificity with intervals), then the verdict."""
    table = Table(title=title)
    for column in ("label", "subgroup", "n", "tp / fn / tn / fp", "sensitivity (95% CI)", "specificity (95% CI)",
                   "brier", "verdict"):  # fmt: skip
        table.add_column(column)

    def with_ci(row: dict, metric: str) -> str:
        value, ci = row[metric], row[f"{metric}_ci"]
        return "—" if value is None else f"{value:.3f} ({ci[0]:.3f}–{ci[1]:.3f})"

    for row in result["rows"]:
        subgroup = ", ".join(f"{k}={v}" for k, v in row["subgroup"].items()) or "everyone"
        verdict = row["verdict"]
        style = "red" if "confirmed" in verdict else "yellow" if "breach" in verdict else ""
        table.add_row(
            row["label"], subgroup, str(row["n"]), f"{row['tp']} / {row['fn']} / {row['tn']} / {row['fp']}",
            with_ci(row, "sensitivity"), with_ci(row, "specificity"),
            "—" if row["brier"] is None else f"{row['brier']:.3f}",
            f"[{style}]{verdict}[/{style}]" if style else verdict,
        )  # fmt: skip
    out.print(table)
    for line in result["verdict"]:
        out.print(escape(line), style="green" if line == "within policy" else "red")
