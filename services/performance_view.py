"""Subgroup performance as people read it: a table with intervals and the verdict per row."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.models import ModelEstimate
from vigil.events import EstimatedValue
from vigil.performance import PerformanceReport, name_of
from vigil.performance_estimate import ESTIMATED, FileEstimate
from vigil.readers import ReaderReport


def print_performance(out: Console, result: PerformanceReport, title: str) -> None:
    """The rows as a table (sensitivity and specificity with intervals), then the verdict."""
    table = Table(title=title)
    for column in ("label", "subgroup", "n", "tp / fn / tn / fp", "sensitivity (95% CI)", "specificity (95% CI)",
                   "brier", "verdict"):  # fmt: skip
        table.add_column(column)

    for row in result.rows:
        verdict = row.verdict
        style = "red" if "confirmed" in verdict else "yellow" if "breach" in verdict else ""
        table.add_row(
            row.label, name_of(tuple(row.subgroup.items())), str(row.n), f"{row.tp} / {row.fn} / {row.tn} / {row.fp}",
            _with_ci(row.sensitivity, row.sensitivity_ci), _with_ci(row.specificity, row.specificity_ci),
            "—" if row.brier is None else f"{row.brier:.3f}",
            f"[{style}]{verdict}[/{style}]" if style else verdict,
        )  # fmt: skip
    out.print(table)
    for line in result.verdict:
        out.print(escape(line), style="green" if line == "within policy" else "red")


def _with_ci(value: float | None, ci: tuple[float, float] | None) -> str:
    return "—" if value is None or ci is None else f"{value:.3f} ({ci[0]:.3f}–{ci[1]:.3f})"


def print_readers(out: Console, result: ReaderReport, title: str) -> None:
    """The model alone and the clinician with it, per critical label and subgroup, then the verdict."""
    table = Table(title=title)
    for column in ("label", "subgroup", "cases", "model sensitivity (95% CI)", "clinician sensitivity (95% CI)",
                   "McNemar p", "model / clinician specificity", "wrong accepted", "right changed"):  # fmt: skip
        table.add_column(column)
    for r in result.rows:
        table.add_row(
            r.label, name_of(tuple(r.subgroup.items())), str(r.cases),
            _with_ci(r.model_sensitivity, r.model_sensitivity_ci),
            _with_ci(r.clinician_sensitivity, r.clinician_sensitivity_ci),
            "—" if r.sensitivity_p is None else f"{r.sensitivity_p:.3g}",
            f"{_plain(r.model_specificity)} / {_plain(r.clinician_specificity)}",
            f"{_plain(r.wrong_accepted)} of {r.wrong_suggestions}",
            f"{_plain(r.right_changed)} of {r.right_suggestions}",
        )  # fmt: skip
    out.print(table)
    out.print(f"{result.cases} reviewed outputs with a final label and a known truth; "
              f"{result.without_final_label} reviewed without a final label")  # fmt: skip
    for line in result.verdict:
        out.print(escape(line), style="green" if line.startswith("clinicians with the model are not") else "red")


def _plain(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def print_estimates(out: Console, result: FileEstimate, title: str) -> None:
    """Each chunk's estimated metrics with their intervals, and the realised ones where known."""
    table = Table(title=title, caption="ESTIMATED from calibrated scores (CBPE); realised where the file has outcomes")
    for column in ("subgroup", "chunk", "rows", *(f"{m} ({result.level:.0%})" for m in ESTIMATED),
                   "realised sens. / spec."):  # fmt: skip
        table.add_column(column)
    for row in result.rows:
        m = row.estimate.metrics
        real = row.realised
        table.add_row(
            name_of(tuple(row.subgroup.items())), str(row.chunk), f"{row.estimate.n} ({row.first}–{row.last})",
            *(_estimated(m[metric]) for metric in ESTIMATED),
            "—" if real is None else f"{_plain(real['sensitivity'])} / {_plain(real['specificity'])}",
        )  # fmt: skip
    out.print(table)
    out.print(f"calibration: {result.reference_size} reference outputs, expected calibration error "
              f"{result.calibration_ece:.3f} (held out)")  # fmt: skip


def _estimated(value: EstimatedValue | None) -> str:
    return "—" if value is None else f"{value.value:.3f} ({value.low:.3f}–{value.high:.3f})"


def print_model_estimate(out: Console, found: ModelEstimate) -> None:
    """Per version and label: the pending chunks' estimates, then the backtest (estimate vs realised)."""
    for each in found.versions:
        who = name_of(tuple(each.subgroup.items()))
        head = f"{found.model_id} {each.model_version}, {each.label!r}, {who}: ESTIMATED (CBPE)"
        if each.not_estimable:
            out.print(f"[yellow]{escape(head)}: no estimate: {escape(each.not_estimable)}[/yellow]")
            continue
        table = Table(title=head, caption=f"calibrated on {each.reference}, held-out ECE {each.calibration_ece:.3f}")
        for column in ("", "outputs", *ESTIMATED, "realised sens. (error)"):
            table.add_column(column)
        for n, chunk in enumerate(each.pending):
            table.add_row(f"pending {n}", str(chunk.n), *(_estimated(chunk.metrics[m]) for m in ESTIMATED), "—")
        for n, test in enumerate(each.backtest):
            error = test.error["sensitivity"]
            came = f"{_plain(test.realised['sensitivity'])} ({'—' if error is None else f'{error:+.3f}'})"
            guessed = (_estimated(test.estimate.metrics[m]) for m in ESTIMATED)
            table.add_row(f"backtest {n}", str(test.estimate.n), *guessed, came)
        out.print(table)
    if found.without_score:
        out.print(f"{found.without_score} outputs in the window carry no score for a critical label: not estimated")
