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

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, Field
from scipy import stats

from vigil.alerts import alert_for
from vigil.events import AlertRaised, ReaderFindingRaised, ReaderFindingResolved
from vigil.join import Position
from vigil.oversight import proportion
from vigil.plan import AlertName
from vigil.policy import ReadersPolicy

Interval = tuple[float, float]
EVERYONE: tuple[tuple[str, str], ...] = ()
ReaderFindingKind = Literal["clinician_less_sensitive", "wrong_suggestions_accepted"]


@dataclass(frozen=True)
class ReaderCase:
    """One reviewed output with its truth."""

    subgroup: Mapping[str, str]
    model_label: str | None
    final_label: str
    truth: str
    decision: str


def _cell(model_right: bool, clinician_right: bool) -> int:
    return 2 * model_right + clinician_right


class Paired(BaseModel):
    """Counts over one (label, subgroup): the truth-positive and truth-negative cases by who was
    right, as [neither, clinician only, model only, both] (`_cell`); they add up across days."""

    positives: list[int] = Field(default_factory=lambda: [0, 0, 0, 0])
    negatives: list[int] = Field(default_factory=lambda: [0, 0, 0, 0])
    wrong_suggestions: int = 0
    wrong_accepted: int = 0
    right_suggestions: int = 0
    right_changed: int = 0

    def add(self, case: ReaderCase, label: str) -> None:
        truth = case.truth == label
        model_right = (case.model_label == label) == truth
        clinician_right = (case.final_label == label) == truth
        (self.positives if truth else self.negatives)[_cell(model_right, clinician_right)] += 1
        if model_right:
            self.right_suggestions += 1
            self.right_changed += case.final_label != case.model_label
        else:
            self.wrong_suggestions += 1
            self.wrong_accepted += case.decision == "accepted"

    def __add__(self, other: Paired) -> Paired:
        return Paired(
            positives=[a + b for a, b in zip(self.positives, other.positives, strict=True)],
            negatives=[a + b for a, b in zip(self.negatives, other.negatives, strict=True)],
            wrong_suggestions=self.wrong_suggestions + other.wrong_suggestions,
            wrong_accepted=self.wrong_accepted + other.wrong_accepted,
            right_suggestions=self.right_suggestions + other.right_suggestions,
            right_changed=self.right_changed + other.right_changed,
        )


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
    both, model_only, clinician_only = _cell(True, True), _cell(True, False), _cell(False, True)
    model_sens, model_sens_ci = proportion(pos[both] + pos[model_only], sum(pos))
    clin_sens, clin_sens_ci = proportion(pos[both] + pos[clinician_only], sum(pos))
    model_spec, _ = proportion(neg[both] + neg[model_only], sum(neg))
    clin_spec, _ = proportion(neg[both] + neg[clinician_only], sum(neg))
    return ReaderRow(
        label=label, subgroup=dict(group), cases=sum(pos) + sum(neg),
        model_sensitivity=model_sens, model_sensitivity_ci=model_sens_ci, clinician_sensitivity=clin_sens,
        clinician_sensitivity_ci=clin_sens_ci, sensitivity_p=mcnemar_p(pos[model_only], pos[clinician_only]),
        model_specificity=model_spec, clinician_specificity=clin_spec,
        specificity_p=mcnemar_p(neg[model_only], neg[clinician_only]),
        wrong_accepted=p.wrong_accepted / p.wrong_suggestions if p.wrong_suggestions else None,
        wrong_suggestions=p.wrong_suggestions,
        right_changed=p.right_changed / p.right_suggestions if p.right_suggestions else None,
        right_suggestions=p.right_suggestions,
    )  # fmt: skip


class Finding(NamedTuple):
    kind: ReaderFindingKind
    row: ReaderRow
    text: str

    @property
    def key(self) -> str:
        """What a finding stands for: its kind, label and subgroup."""
        return "/".join([self.kind, self.row.label, *(f"{k}={v}" for k, v in sorted(self.row.subgroup.items()))])


def findings(rows: Iterable[ReaderRow], policy: ReadersPolicy) -> list[Finding]:
    """Where the clinician with the model is significantly less sensitive than the model alone
    (McNemar at `alpha`), and where clinicians accepted more than `max_wrong_accepted` of at least
    `min_wrong` wrong suggestions."""
    found = []
    for r in rows:
        where = ", ".join(f"{k}={v}" for k, v in r.subgroup.items()) or "everyone"
        model, clinician, p = r.model_sensitivity, r.clinician_sensitivity, r.sensitivity_p
        if model is not None and clinician is not None and p is not None and clinician < model and p < policy.alpha:
            found.append(Finding("clinician_less_sensitive", r, (
                f"clinicians with the model are less sensitive for {r.label!r} than the model alone in {where}: "
                f"{clinician:.3f} vs {model:.3f} (McNemar p={p:.3g})"
            )))  # fmt: skip
        accepted, wrong = r.wrong_accepted, r.wrong_suggestions
        if accepted is not None and wrong >= policy.min_wrong and accepted > policy.max_wrong_accepted:
            found.append(Finding("wrong_suggestions_accepted", r, (
                f"clinicians accepted {accepted:.0%} of {wrong} wrong suggestions for {r.label!r} in {where} "
                f"(above {policy.max_wrong_accepted:.0%}: automation bias?)"
            )))  # fmt: skip
    return found


def reader_report(
    cases: Sequence[ReaderCase],
    labels: Sequence[str],
    by: Sequence[str],
    without_final_label: int,
    policy: ReadersPolicy | None = None,
) -> ReaderReport:
    """Rows per critical label and subgroup; the verdict says what `findings` found."""
    table = tally_readers(cases, labels, by)
    rows = [row_of(label, group, p) for (label, group), p in sorted(table.items())]
    verdict = [f.text for f in findings(rows, policy or ReadersPolicy())]
    return ReaderReport(rows=rows, verdict=verdict or ["clinicians with the model are not worse than it alone"],
                        cases=len(cases), without_final_label=without_final_label)  # fmt: skip


class ModelReaders(ReaderReport):
    """A registered model's reader analysis from the event store."""

    model_id: str
    model_version: str | None
    window_days: int | None


# --- in the worker: reviewed outputs joined to their outcomes, counted by day, judged ----------

NAMESPACE = uuid.UUID("0b6d8f2a-4c1e-4e9a-b7d3-5f1a3c7e9b2d")
KEEP_MET = timedelta(hours=1)  # a met entry absorbs records read again after a crash, then goes


class ReaderLeft(BaseModel):
    """What the readers' join keeps of an output whose truth is known (a joined pair)."""

    model_version: str
    made_at: datetime
    model_label: str | None
    subgroup: dict[str, str]
    truth: str


class ReviewedOutput(BaseModel):
    """An output's first review, handed on by oversight: what the clinician decided and answered."""

    inference_id: uuid.UUID
    model_version: str
    decision: str
    final_label: str | None
    at: Position


class ReaderState(BaseModel):
    """One model version's reader counts, by day of the output, and the findings that stand."""

    taken: dict[str, int] = {}  # vigil.join.takes: how far the second stage's records were counted
    days: dict[str, dict[str, Paired]] = {}  # day -> cell ("label", or "label\x1fattribute\x1fvalue") -> counts
    values: dict[str, list[str]] = {}  # attribute -> its values counted so far; later ones are "other"
    without_final_label: int = 0
    latest: datetime | None = None  # the latest output counted: where the window ends
    standing: dict[str, uuid.UUID] = {}  # Finding.key -> the ReaderFindingRaised that stands


def count_case(
    state: ReaderState, case: ReaderCase, made_at: datetime, labels: Sequence[str], by: Sequence[str], max_values: int
) -> None:
    """Adds a case to the day its output was made, per critical label, for everyone and each
    attribute of `by` on its own."""
    state.latest = max(state.latest or made_at, made_at)
    cells = state.days.setdefault(made_at.date().isoformat(), {})
    for attribute in by:
        if (value := case.subgroup.get(attribute)) is None:
            continue
        seen = state.values.setdefault(attribute, [])
        if value not in seen and len(seen) >= max_values:
            value = "other"
        elif value not in seen:
            seen.append(value)
        for label in labels:
            cells.setdefault(f"{label}\x1f{attribute}\x1f{value}", Paired()).add(case, label)
    for label in labels:
        cells.setdefault(label, Paired()).add(case, label)


def window_rows(state: ReaderState, last_day: date, window_days: int) -> list[ReaderRow]:
    """Rows over the window's days; older days are dropped from the state."""
    first = (last_day - timedelta(days=window_days - 1)).isoformat()
    state.days = {d: cells for d, cells in state.days.items() if d >= first}
    table: dict[str, Paired] = {}
    for cells in state.days.values():
        for cell, counts in cells.items():
            table[cell] = table[cell] + counts if cell in table else counts
    rows = []
    for cell, counts in sorted(table.items()):
        label, *group = cell.split("\x1f")
        rows.append(row_of(label, ((group[0], group[1]),) if group else EVERYONE, counts))
    return rows


def reader_transitions(
    state: ReaderState,
    model_id: str,
    version: str,
    rows: Sequence[ReaderRow],
    found: Sequence[Finding],
    window_days: int,
    window_end: datetime,
) -> list[ReaderFindingRaised | ReaderFindingResolved]:
    """ReaderFindingRaised for a finding of `rows` that starts, ReaderFindingResolved (with the
    window's figures) for one that ends; updates `state.standing`."""
    now = {f.key: f for f in found}
    out: list[ReaderFindingRaised | ReaderFindingResolved] = []
    for key, finding in now.items():
        if key not in state.standing:
            raised = ReaderFindingRaised(
                event_id=uuid.uuid5(NAMESPACE, f"raised/{model_id}/{version}/{key}/{window_end.isoformat()}"),
                **_fields(finding, model_id, version, window_days, window_end),
            )
            state.standing[key] = raised.event_id
            out.append(raised)
    ended = {(f := Finding(kind, row, "")).key: f for row in rows for kind in get_args(ReaderFindingKind)}
    for key in [k for k in state.standing if k not in now and k in ended]:  # else: no case of it left to judge
        kind, row = ended[key].kind, ended[key].row
        raised_id = state.standing.pop(key)
        back = Finding(kind, row, f"no longer {kind.replace('_', ' ')} for {row.label!r}")
        out.append(ReaderFindingResolved(
            event_id=uuid.uuid5(NAMESPACE, f"resolved/{raised_id}"), raised_event_id=raised_id,
            **_fields(back, model_id, version, window_days, window_end),
        ))  # fmt: skip
    return out


def _fields(finding: Finding, model_id: str, version: str, window_days: int, window_end: datetime) -> dict[str, Any]:
    r = finding.row
    return {
        "occurred_at": window_end, "model_id": model_id, "model_version": version, "kind": finding.kind,
        "label": r.label, "subgroup": r.subgroup, "model_sensitivity": r.model_sensitivity,
        "clinician_sensitivity": r.clinician_sensitivity, "sensitivity_p": r.sensitivity_p,
        "wrong_accepted": r.wrong_accepted, "wrong_suggestions": r.wrong_suggestions, "cases": r.cases,
        "summary": finding.text, "window_days": window_days, "window_end": window_end,
    }  # fmt: skip


ALERT_OF: dict[ReaderFindingKind, AlertName] = {
    "clinician_less_sensitive": "ClinicianLessSensitive",
    "wrong_suggestions_accepted": "WrongSuggestionsAccepted",
}


def reader_alert(event: ReaderFindingRaised | ReaderFindingResolved) -> AlertRaised:
    resolved = isinstance(event, ReaderFindingResolved)
    where = ", ".join(f"{k}={v}" for k, v in event.subgroup.items()) or "everyone"
    return alert_for(
        event, ALERT_OF[event.kind], "critical" if event.kind == "clinician_less_sensitive" else "warning",
        f"{event.model_id} {event.model_version}: {event.summary} ({event.window_days} days)",
        model_id=event.model_id, model_version=event.model_version,
        labels={"label": event.label, "subgroup": where}, resolved=resolved,
    )  # fmt: skip
