"""Subgroup performance from outcomes joined to inferences: confusion counts, metrics with intervals,
safety thresholds and equity gaps.

A model's labels are judged one-vs-rest for each critical label (for a model without critical
labels, its first label): the label is the positive class. Counts are sums, so they merge across
windows and partitions in any order; everything else is computed from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

import pandas as pd
from pydantic import BaseModel, Field
from scipy import stats

Metric = Literal["sensitivity", "specificity", "ppv", "npv", "accuracy", "fpr"]
METRICS: tuple[Metric, ...] = ("sensitivity", "specificity", "ppv", "npv", "accuracy", "fpr")
Subgroup = tuple[tuple[str, str], ...]  # sorted (attribute, value) pairs; () is everyone
OVERALL: Subgroup = ()
OTHER = "other"  # values beyond an attribute's cap


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    brier_sum: float = 0.0
    scored: int = 0  # outcomes whose inference carried a probability for the label

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.tp + other.tp,
            self.fp + other.fp,
            self.tn + other.tn,
            self.fn + other.fn,
            self.brier_sum + other.brier_sum,
            self.scored + other.scored,
        )

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def positives(self) -> int:
        return self.tp + self.fn

    @property
    def negatives(self) -> int:
        return self.tn + self.fp

    def fraction(self, metric: Metric) -> tuple[int, int]:
        """The metric as successes over trials."""
        return {
            "sensitivity": (self.tp, self.tp + self.fn),
            "specificity": (self.tn, self.tn + self.fp),
            "ppv": (self.tp, self.tp + self.fp),
            "npv": (self.tn, self.tn + self.fn),
            "accuracy": (self.tp + self.tn, self.n),
            "fpr": (self.fp, self.fp + self.tn),
        }[metric]

    def value(self, metric: Metric) -> float | None:
        k, n = self.fraction(metric)
        return k / n if n else None

    def interval(self, metric: Metric, confidence: float = 0.95) -> tuple[float, float] | None:
        """Wilson score interval (scipy)."""
        k, n = self.fraction(metric)
        if not n:
            return None
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
        return float(ci.low), float(ci.high)

    @property
    def brier(self) -> float | None:
        return self.brier_sum / self.scored if self.scored else None

    def as_dict(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn, "brier_sum": self.brier_sum,
                "scored": self.scored}  # fmt: skip


def outcome_counts(predicted: str | None, truth: str, positive: str, probability: float | None) -> Counts:
    """One outcome's contribution, with `positive` as the positive class. No prediction counts as negative."""
    actual, said = truth == positive, predicted == positive
    brier = (probability - actual) ** 2 if probability is not None else 0.0
    return Counts(
        tp=int(actual and said), fp=int(said and not actual), tn=int(not actual and not said),
        fn=int(actual and not said), brier_sum=brier, scored=int(probability is not None),
    )  # fmt: skip


def probability_of(positive: str, score: float | None, class_scores: Mapping[str, float]) -> float | None:
    """The model's probability for the positive class: its class score, else its score (which, for
    a binary model, is the probability of the positive class)."""
    return class_scores.get(positive, score)


def attributes_of(by: str) -> list[str]:
    """'sex, age_band' -> ['sex', 'age_band']: the `by` of the API and the CLI."""
    return [a.strip() for a in by.split(",") if a.strip()]


def subgroups_of(attributes: Mapping[str, str], by: Sequence[str], depth: int) -> list[Subgroup]:
    """Everyone, each attribute's group, and their intersections up to `depth` attributes. An
    attribute the inference does not carry puts it in no group of that attribute: a model whose
    inferences never carry one (a screening model and `language`) would otherwise repeat every
    group as its intersection with "unknown", each breach and candidate counted again. A producer
    that wants missing values watched as a group sends them as a value ("not_recorded")."""
    present = sorted((name, attributes[name]) for name in by if name in attributes)
    return [OVERALL, *(g for k in range(1, depth + 1) for g in combinations(present, k))]


@dataclass
class Capped:
    """Values seen per attribute, at most `limit` each; later ones fall into 'other', so a
    free-text attribute cannot explode the state or the metric labels."""

    limit: int
    seen: dict[str, list[str]] = field(default_factory=dict)

    def apply(self, attributes: Mapping[str, str], by: Sequence[str]) -> dict[str, str]:
        out = {}
        for name in (n for n in by if n in attributes):  # as in subgroups_of: a missing one is no group
            value = attributes[name]
            known = self.seen.setdefault(name, [])
            if value not in known and len(known) < self.limit:
                known.append(value)
            out[name] = value if value in known else OTHER
        return out


@dataclass(frozen=True)
class Pair:
    """An inference joined to its outcome: what performance is computed from."""

    subgroup: Mapping[str, str]
    predicted: str | None
    score: float | None
    class_scores: Mapping[str, float]
    truth: str


def positive_labels(labels: Sequence[str], critical: Sequence[str]) -> list[str]:
    return list(critical) or list(labels[:1])


def tally(
    pairs: Iterable[Pair], positives: Sequence[str], by: Sequence[str], depth: int
) -> dict[tuple[str, Subgroup], Counts]:
    """Confusion counts per (positive label, subgroup)."""
    table: dict[tuple[str, Subgroup], Counts] = {}
    for pair in pairs:
        groups = subgroups_of(pair.subgroup, by, depth)
        for positive in positives:
            p = probability_of(positive, pair.score, pair.class_scores)
            counts = outcome_counts(pair.predicted, pair.truth, positive, p)
            for group in groups:
                key = (positive, group)
                table[key] = table.get(key, Counts()) + counts
    return table


# --- judging against the policy ------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    subgroup: Subgroup
    value: float
    low: float
    high: float
    successes: int
    trials: int


@dataclass(frozen=True)
class Breach:
    label: str
    metric: Metric
    threshold: float
    estimate: Estimate
    level: Literal["warning", "confirmed"]  # point estimate below; whole interval below


@dataclass(frozen=True)
class Disparity:
    label: str
    metric: Metric
    attributes: tuple[str, ...]
    best: Estimate
    worst: Estimate
    gap: float
    limit: float
    p_value: float  # Fisher's exact test, best against worst
    significant: bool


@dataclass(frozen=True)
class Rules:
    """What the policy says for one model (see vigil.policy.PerformancePolicy.rules)."""

    metric: Metric
    threshold: float | None
    disparity: float
    min_positives: int
    min_negatives: int
    confidence: float = 0.95


def judged(counts: Counts, rules: Rules) -> bool:
    return counts.positives >= rules.min_positives and counts.negatives >= rules.min_negatives


def estimate(subgroup: Subgroup, counts: Counts, rules: Rules) -> Estimate | None:
    value, interval = counts.value(rules.metric), counts.interval(rules.metric, rules.confidence)
    if value is None or interval is None:
        return None
    return Estimate(subgroup, value, *interval, *counts.fraction(rules.metric))


def assess(table: Mapping[tuple[str, Subgroup], Counts], rules: Rules) -> tuple[list[Breach], list[Disparity]]:
    """Threshold breaches per judged subgroup, and per attribute set the gap between its best and
    worst judged subgroups when it exceeds the policy's limit."""
    breaches, disparities = [], []
    families: dict[tuple[str, tuple[str, ...]], list[Estimate]] = {}
    for (label, subgroup), counts in sorted(table.items()):
        if not judged(counts, rules) or (found := estimate(subgroup, counts, rules)) is None:
            continue
        if rules.threshold is not None and found.value < rules.threshold:
            level: Literal["warning", "confirmed"] = "confirmed" if found.high < rules.threshold else "warning"
            breaches.append(Breach(label, rules.metric, rules.threshold, found, level))
        if subgroup:
            families.setdefault((label, tuple(name for name, _ in subgroup)), []).append(found)
    for (label, attributes), members in sorted(families.items()):
        if len(members) < 2:
            continue
        best = max(members, key=lambda e: (e.value, e.subgroup))
        worst = min(members, key=lambda e: (e.value, e.subgroup))
        gap = best.value - worst.value
        if gap > rules.disparity:
            table_2x2 = [
                [best.successes, best.trials - best.successes],
                [worst.successes, worst.trials - worst.successes],
            ]
            p_value = float(stats.fisher_exact(table_2x2).pvalue)
            significant = p_value < 1 - rules.confidence
            disparities.append(
                Disparity(label, rules.metric, attributes, best, worst, gap, rules.disparity, p_value, significant)
            )
    return breaches, disparities


def name_of(subgroup: Subgroup) -> str:
    """'everyone' or 'sex=F, site=north'; bounded by the attribute caps, so fit for a metric label."""
    return ", ".join(f"{k}={v}" for k, v in subgroup) or "everyone"


# --- what people read: rows with intervals and the policy's verdict -------------------------------


def verdict_of(breaches: list[Breach], disparities: list[Disparity]) -> list[str]:
    lines = [
        f"{b.level} breach: {b.metric} for {b.label!r} in {name_of(b.estimate.subgroup)} is {b.estimate.value:.3f} "
        f"(95% CI {b.estimate.low:.3f}-{b.estimate.high:.3f}), below {b.threshold:g}"
        for b in breaches
    ]
    lines += [
        f"disparity in {d.metric} for {d.label!r} across {', '.join(d.attributes)}: {name_of(d.best.subgroup)} "
        f"{d.best.value:.3f} vs {name_of(d.worst.subgroup)} {d.worst.value:.3f} "
        f"(CI {d.worst.low:.3f}-{d.worst.high:.3f}), gap {d.gap:.3f} > {d.limit:g}; "
        f"{'significant' if d.significant else 'not significant'} (Fisher p={d.p_value:.3g})"
        for d in disparities
    ]
    return lines or ["within policy"]


Interval = tuple[float, float]


class SubgroupRow(BaseModel):
    """One (label, subgroup) row: its confusion counts, every metric with its interval, the verdict."""

    label: str
    subgroup: dict[str, str]
    n: int
    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: float | None
    sensitivity_ci: Interval | None
    specificity: float | None
    specificity_ci: Interval | None
    ppv: float | None
    ppv_ci: Interval | None
    npv: float | None
    npv_ci: Interval | None
    accuracy: float | None
    accuracy_ci: Interval | None
    fpr: float | None
    fpr_ci: Interval | None
    brier: float | None
    verdict: str


class EstimateRow(BaseModel):
    subgroup: dict[str, str]
    value: float
    ci: Interval


class DisparityRow(BaseModel):
    label: str
    metric: Metric
    attributes: list[str]
    gap: float
    limit: float
    p_value: float = Field(description="Fisher's exact test, best against worst")
    significant: bool
    best: EstimateRow
    worst: EstimateRow


class RulesInForce(BaseModel):
    metric: Metric
    threshold: float | None
    disparity: float
    min_positives: int
    min_negatives: int


class PerformanceReport(BaseModel):
    """Subgroup performance as people read it: rows, the equity gaps, the verdict in words."""

    rows: list[SubgroupRow]
    disparity: list[DisparityRow]
    verdict: list[str]
    policy: RulesInForce


class Unmatched(BaseModel):
    predictions_without_outcome: int
    outcomes_without_prediction: int


class FilePerformance(PerformanceReport):
    """`vigil performance compute` on files: the report and the rows that matched nothing."""

    unmatched: Unmatched


class ModelPerformance(PerformanceReport):
    """A registered model's performance from the event store."""

    model_id: str
    model_version: str | None
    window_days: int | None
    outcomes: int
    outcomes_without_inference: int


def _estimate_row(e: Estimate) -> EstimateRow:
    return EstimateRow(subgroup=dict(e.subgroup), value=e.value, ci=(e.low, e.high))


def report(
    table: Mapping[tuple[str, Subgroup], Counts], rules: Rules, by: Sequence[str] | None = None
) -> PerformanceReport:
    """Rows per (label, subgroup), with every metric, its interval and the verdict on the row;
    `by` keeps the subgroups over exactly those attributes (and everyone)."""
    breaches, disparities = assess(table, rules)
    breached = {(b.label, b.estimate.subgroup): b.level for b in breaches}
    rows = []
    for (label, subgroup), counts in sorted(table.items()):
        if by is not None and subgroup and sorted(name for name, _ in subgroup) != sorted(by):
            continue
        metrics: dict[str, float | Interval | None] = {}
        for metric in METRICS:
            metrics[metric] = counts.value(metric)
            metrics[f"{metric}_ci"] = counts.interval(metric, rules.confidence)
        verdict = (
            "too few outcomes to judge"
            if not judged(counts, rules)
            else f"{breached[(label, subgroup)]} breach"
            if (label, subgroup) in breached
            else "ok"
        )
        rows.append(
            SubgroupRow.model_validate(
                {"label": label, "subgroup": dict(subgroup), "n": counts.n, "tp": counts.tp, "fp": counts.fp,
                 "tn": counts.tn, "fn": counts.fn, **metrics, "brier": counts.brier, "verdict": verdict}
            )
        )  # fmt: skip
    return PerformanceReport(
        rows=rows,
        disparity=[
            DisparityRow(
                label=d.label, metric=d.metric, attributes=list(d.attributes), gap=d.gap, limit=d.limit,
                p_value=d.p_value, significant=d.significant, best=_estimate_row(d.best), worst=_estimate_row(d.worst),
            )
            for d in disparities
            if by is None or sorted(d.attributes) == sorted(by)
        ],
        verdict=verdict_of(breaches, disparities),
        policy=RulesInForce(metric=rules.metric, threshold=rules.threshold, disparity=rules.disparity,
                            min_positives=rules.min_positives, min_negatives=rules.min_negatives),
    )  # fmt: skip


def pairs_from_files(
    predictions: pd.DataFrame, outcomes: pd.DataFrame, by: Sequence[str]
) -> tuple[list[Pair], Unmatched]:
    """Predictions (inference_id, label, optional score, the `by` columns) joined to outcomes
    (inference_id, label). Rows that do not match are counted, not dropped silently."""
    for name, frame, needed in (("predictions", predictions, ["inference_id", "label", *by]),
                                ("outcomes", outcomes, ["inference_id", "label"])):  # fmt: skip
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise PerformanceInputError(f"{name} file lacks column(s): {', '.join(missing)}")
    duplicated = predictions["inference_id"][predictions["inference_id"].duplicated()]
    if len(duplicated):
        raise PerformanceInputError(f"predictions file: inference_id {duplicated.iloc[0]!r} appears more than once")
    truth = outcomes.drop_duplicates("inference_id", keep="last").set_index("inference_id")["label"].astype(str)
    joined = predictions.join(truth.rename("truth"), on="inference_id", how="inner")
    has_score = "score" in predictions.columns
    pairs = [
        Pair(
            {name: str(getattr(row, name)) for name in by},
            None if pd.isna(row.label) else str(row.label),
            float(row.score) if has_score and not pd.isna(row.score) else None,
            {},
            row.truth,
        )
        for row in joined.itertuples()
    ]
    unmatched = Unmatched(
        predictions_without_outcome=len(predictions) - len(joined),
        outcomes_without_prediction=int((~truth.index.isin(predictions["inference_id"])).sum()),
    )
    return pairs, unmatched


class PerformanceInputError(ValueError):
    """Files that cannot be evaluated; the message says which and why."""
