"""One throughput figure against its baseline: printed as a table and written to BENCHMARKS.md."""

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
