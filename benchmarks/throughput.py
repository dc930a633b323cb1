"""Benchmark figures printed as a table and written to their section of BENCHMARKS.md."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from benchmarks.drift import _write_section


def report_throughput(
    section: str,
    title: str,
    command: str,
    unit: str,
    n: int,
    baseline: tuple[str, float],
    vigil: tuple[str, float],
    note: str = "",
) -> float:
    """Prints and writes `title` with the baseline's and Vigil's seconds and rates (and a note under
    the table); returns the ratio Vigil / baseline (of rates)."""
    ratio = baseline[1] / vigil[1]
    report_table(
        section,
        title,
        f"One run: `{command}`. Ratio = Vigil's {unit} / the baseline's.",
        ["", "seconds", unit],
        [(label, f"{seconds:.2f}", f"{n / seconds:,.0f}") for label, seconds in (baseline, vigil)],
        ("ratio", "", f"{ratio:.3f}"),
        note,
    )
    return ratio


def report_table(section: str, title: str, intro: str, columns: list[str], rows: Sequence[Sequence[str]],
                 summary: Sequence[str] | None = None, note: str = "") -> None:  # fmt: skip
    """Prints `rows` under `columns` (and a bold `summary` row, and a `note`) and writes them,
    between `intro` and `note`, as the section `section` of BENCHMARKS.md."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    if summary:
        table.add_row(*summary)
    Console().print(table)
    if note:
        Console().print(note)
    lines = [f"| {' | '.join(row)} |" for row in rows]
    if summary:
        lines.append("| " + " | ".join(f"**{cell}**" if cell else "" for cell in summary) + " |")
    header = f"| {' | '.join(columns)} |\n|{'---|' * len(columns)}\n"
    body = f"### {title}\n\n{intro}\n\n" + header + "\n".join(lines) + (f"\n\n{note}" if note else "")
    _write_section(section, body)
