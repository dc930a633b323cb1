"""Benchmark figures printed as a table and written to their section of BENCHMARKS.md."""

from __future__ import annotations

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
    rows = [(label, f"{seconds:.2f}", f"{n / seconds:,.0f}") for label, seconds in (baseline, vigil)]
    table = Table(title=title)
    for column in ("", "seconds", unit):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    Console().print(f"ratio {ratio:.3f}" + (f"\n{note}" if note else ""))
    lines = [f"| {label} | {seconds} | {rate} |" for label, seconds, rate in rows]
    lines.append(f"| **ratio** | | **{ratio:.3f}** |")
    _write_section(
        section,
        f"### {title}\n\nOne run: `{command}`. Ratio = Vigil's {unit} / the baseline's.\n\n"
        f"| | seconds | {unit} |\n|---|---|---|\n" + "\n".join(lines) + (f"\n\n{note}" if note else ""),
    )
    return ratio


def report_table(section: str, title: str, intro: str, columns: list[str], rows: list[tuple[str, ...]],
                 summary: tuple[str, ...] | None = None) -> None:  # fmt: skip
    """Prints `rows` under `columns` (and a bold `summary` row) and writes them, after `intro`, as
    the section `section` of BENCHMARKS.md."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    if summary:
        table.add_row(*summary)
    Console().print(table)
    lines = [f"| {' | '.join(row)} |" for row in rows]
    if summary:
        lines.append("| " + " | ".join(f"**{cell}**" if cell else "" for cell in summary) + " |")
    header = f"| {' | '.join(columns)} |\n|{'---|' * len(columns)}\n"
    _write_section(section, f"### {title}\n\n{intro}\n\n" + header + "\n".join(lines))
