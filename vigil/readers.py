"""AI alone against the clinician with AI: is the clinician who reviews the model's output better
than the model, and do clinicians accept its wrong suggestions (automation bias)?

A model used as a second reader is worth what the clinician does with it. For each reviewed output
whose truth is known, the model's answer (its output label) and the clinician's final answer
(`ReviewRecorded.final_label`) are each right or wrong. Per critical label judged one-vs-rest and
per subgroup: the model's sensitivity and specificity alone, the clinician's with it, their paired
difference with the exact McNemar test on the discordant pairs (scipy's binomial test: statsmodels'
`mcnemar(exact=True)` gives the same), and two rates people act on: the share of the model's wrong
suggestions that clinicians accepted, and the share of its right ones they changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from scipy import stats

from vigil.oversight import proportion

Interval = tuple[float, float]
EVERYONE: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ReaderCase:
    """One reviewed output with its truth."""

    subgroup: Mapping[str, str]
    model_label: str | None
    final_label: str
    truth: str
    decision: str


@dataclass
class Paired:
    """Counts over one (label, subgroup): the truth-positive and truth-negative cases by who was right."""

    # (model right, clinician right) -> cases, among truth positives and truth negatives
    positives: dict[tuple[bool, bool], int] = field(default_factory=dict)
    negatives: dict[tuple[bool, bool], int] = field(default_factory=dict)
    wrong_suggestions: int = 0
    wrong_accepted: int = 0
    right_suggestions: int = 0
    right_changed: int = 0

    def add(self, case: ReaderCase, label: str) -> None:
        truth = case.truth == label
        model_right = (case.model_label == label) == truth
        clinician_right = (case.final_label == label) == truth
        side = self.positives if truth else self.negatives
        side[(model_right, clinician_right)] = side.get((model_right, clinician_right), 0) + 1
        if model_right:
            self.right_suggestions += 1
            self.right_changed += case.final_label != case.model_label
        else:
            self.wrong_suggestions += 1
            self.wrong_accepted += case.decision == "accepted"


class ReaderRow(BaseModel):
    label: str
    subgroup: dict[str, str]
    cases: int
    model_sensitivity: float | None
    model_sensitivity_ci: Interval | None
    clinician_sensitivity: float | None
    clinician_sensitivity_ci: Interval | None
    sensitivity_p: float | None = Field(description="exact McNemar on the truth-positive discordant pairs")
    model_specificity: float | None
    clinician_specificity: float | None
    specificity_p: float | None = Field(description="exact McNemar on the truth-negative discordant pairs")
    wrong_accepted: float | None = Field(description="share of the model's wrong suggestions clinicians accepted")
    wrong_suggestions: int
    right_changed: float | None = Field(description="share of the model's right suggestions clinicians changed")
    right_suggestions: int


class ReaderReport(BaseModel):
    rows: list[ReaderRow]
    verdict: list[str]
    cases: int = Field(description="reviewed outputs with a final label and a known truth")
    without_final_label: int = Field(description="reviewed outputs with a known truth but no final label")


def mcnemar_p(model_only: int, clinician_only: int) -> float | None:
    """Two-sided exact McNemar p of the discordant pairs (None without any)."""
    n = model_only + clinician_only
    return None if n == 0 else float(stats.binomtest(model_only, n, 0.5).pvalue)


def _subgroups(subgroup: Mapping[str, str], by: Sequence[str]) -> list[tuple[tuple[str, str], ...]]:
    """Everyone, and the case's value of each attribute of `by` on its own."""
    return [EVERYONE, *(((a, subgroup[a]),) for a in by if a in subgroup)]


def tally_readers(
    cases: Iterable[ReaderCase], labels: Sequence[str], by: Sequence[str]
) -> dict[tuple[str, tuple[tuple[str, str], ...]], Paired]:
    table: dict[tuple[str, tuple[tuple[str, str], ...]], Paired] = {}
    for case in cases:
        for label in labels:
            for group in _subgroups(case.subgroup, by):
                table.setdefault((label, group), Paired()).add(case, label)
    return table


def row_of(label: str, group: tuple[tuple[str, str], ...], p: Paired) -> ReaderRow:
    pos, neg = p.positives, p.negatives
    model_sens, model_sens_ci = proportion(pos.get((True, True), 0) + pos.get((True, False), 0), sum(pos.values()))
    clin_sens, clin_sens_ci = proportion(pos.get((True, True), 0) + pos.get((False, True), 0), sum(pos.values()))
    model_spec, _ = proportion(neg.get((True, True), 0) + neg.get((True, False), 0), sum(neg.values()))
    clin_spec, _ = proportion(neg.get((True, True), 0) + neg.get((False, True), 0), sum(neg.values()))
    return ReaderRow(
        label=label, subgroup=dict(group), cases=sum(pos.values()) + sum(neg.values()),
        model_sensitivity=model_sens, model_sensitivity_ci=model_sens_ci, clinician_sensitivity=clin_sens,
        clinician_sensitivity_ci=clin_sens_ci,
        sensitivity_p=mcnemar_p(pos.get((True, False), 0), pos.get((False, True), 0)),
        model_specificity=model_spec, clinician_specificity=clin_spec,
        specificity_p=mcnemar_p(neg.get((True, False), 0), neg.get((False, True), 0)),
        wrong_accepted=p.wrong_accepted / p.wrong_suggestions if p.wrong_suggestions else None,
        wrong_suggestions=p.wrong_suggestions,
        right_changed=p.right_changed / p.right_suggestions if p.right_suggestions else None,
        right_suggestions=p.right_suggestions,
    )  # fmt: skip


def reader_report(
    cases: Sequence[ReaderCase],
    labels: Sequence[str],
    by: Sequence[str],
    without_final_label: int,
    alpha: float = 0.05,
    max_wrong_accepted: float = 0.5,
    min_wrong: int = 10,
) -> ReaderReport:
    """Rows per critical label and subgroup; the verdict names where the clinician with the model
    is significantly less sensitive than the model alone (McNemar at `alpha`), and where clinicians
    accepted more than `max_wrong_accepted` of at least `min_wrong` wrong suggestions."""
    table = tally_readers(cases, labels, by)
    rows = [row_of(label, group, p) for (label, group), p in sorted(table.items())]
    verdict = []
    for r in rows:
        where = ", ".join(f"{k}={v}" for k, v in r.subgroup.items()) or "everyone"
        model, clinician, p = r.model_sensitivity, r.clinician_sensitivity, r.sensitivity_p
        if model is not None and clinician is not None and p is not None and clinician < model and p < alpha:
            verdict.append(
                f"clinicians with the model are less sensitive for {r.label!r} than the model alone in {where}: "
                f"{clinician:.3f} vs {model:.3f} (McNemar p={p:.3g})"
            )
        if r.wrong_accepted is not None and r.wrong_suggestions >= min_wrong and r.wrong_accepted > max_wrong_accepted:
            verdict.append(
                f"clinicians accepted {r.wrong_accepted:.0%} of {r.wrong_suggestions} wrong suggestions for "
                f"{r.label!r} in {where} (above {max_wrong_accepted:.0%}: automation bias?)"
            )
    return ReaderReport(rows=rows, verdict=verdict or ["clinicians with the model are not worse than it alone"],
                        cases=len(cases), without_final_label=without_final_label)  # fmt: skip


class ModelReaders(ReaderReport):
    """A registered model's reader analysis from the event store."""

    model_id: str
    model_version: str | None
    window_days: int | None
