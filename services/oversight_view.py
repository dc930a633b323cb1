"""Human oversight as people read it: a row per group, their transparency, then the policy's verdict."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vigil.oversight import OversightReport


def print_oversight(out: Console, result: OversightReport, title: str) -> None:
    table = Table(title=title)
    for column in ("group", "outputs", "in time / late / never", "pending", "reviewed in time (95% CI)", "reviews",
                   "overridden (95% CI)", "acted before review", "autonomous"):  # fmt: skip
        table.add_column(column)

    for row in result.rows:
        table.add_row(
            row.group, str(row.outputs), f"{row.in_time} / {row.late} / {row.unreviewed}", str(row.pending),
            _share(row.coverage, row.coverage_ci), str(row.reviews),
            _share(row.override_share, row.override_share_ci), str(row.acted_before_review), str(row.autonomous),
        )  # fmt: skip
    out.print(table)
    shown = Table(title="Transparency: share of outputs carrying")
    for column in ("group", "outputs", "disclaimer (patient-facing)", "explanation", "consent", "score"):
        shown.add_column(column)
    for t in result.transparency:
        disclaimer = f"{_plain(t.disclaimer_shown)} of {t.patient_facing}" if t.patient_facing else "—"
        shown.add_row(t.group, str(t.outputs), disclaimer, _plain(t.explanation_present), _plain(t.consent_recorded),
                      _plain(t.score_present))  # fmt: skip
    out.print(shown)
    for line in result.verdict:
        out.print(escape(line), style="green" if line == "within policy" else "red")


def _share(value: float | None, ci: tuple[float, float] | None) -> str:
    return "—" if value is None or ci is None else f"{value:.1%} ({ci[0]:.1%}–{ci[1]:.1%})"


def _plain(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"
