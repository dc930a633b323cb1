"""Performance before the truth arrives: confidence-based performance estimation (CBPE, as NannyML
defines it) for a binary or one-vs-rest critical label.

A model's scores, calibrated on a reference period whose outcomes are known (isotonic regression,
as scikit-learn fits it: ties averaged, pool-adjacent-violators, linear between the fitted points,
clipped outside them), say for each output the probability that its truth is the critical label.
The expected confusion matrix of outputs still waiting for their outcome follows (an output
predicted critical adds its probability to TP and the rest to FP; one predicted otherwise adds it
to FN and the rest to TN), and every metric from it.

Its limits, as NannyML documents them: the scores must be well calibrated on the reference (checked
here: the expected calibration error of the calibration, measured on held-out folds of the
reference, must stay under the policy's limit, or no estimate is given and the reason is said); the
relation between inputs and truth must not have changed since the reference (covariate shift only:
a concept shift makes every estimate wrong, which only realised outcomes can show); and a chunk must
be large enough for its interval to mean anything.

The interval is a parametric bootstrap: truths drawn for the chunk's outputs from their calibrated
probabilities, the metric computed on each draw, its central `level` share. It covers the realised
value at about that rate when the calibration is right; the error of the calibration itself is
not in it (that is what the calibration check bounds)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict
from scipy.optimize import isotonic_regression

from vigil.alerts import alert_for
from vigil.events import (
    AlertRaised,
    CalibrationReferenceSet,
    EstimatedValue,
    InferenceOutput,
    PerformanceEstimated,
)
from vigil.performance import OVERALL, Metric, Subgroup, subgroups_of

if TYPE_CHECKING:
    import pandas as pd

ESTIMATED: tuple[Metric, ...] = ("sensitivity", "specificity", "ppv", "npv")
Floats = NDArray[np.float64]


class NotEstimable(ValueError):
    """Why no estimate is given (the reference cannot calibrate, or calibrates too poorly)."""


class Calibration(BaseModel):
    """An isotonic map from scores to the probability of the critical label, and how well it holds."""

    model_config = ConfigDict(frozen=True)

    scores: list[float]  # the fitted points, increasing
    probabilities: list[float]
    reference_size: int
    ece: float  # expected calibration error on held-out folds of the reference

    @classmethod
    def recorded(cls, event: CalibrationReferenceSet) -> Calibration:
        return cls(scores=event.scores, probabilities=event.probabilities, reference_size=event.reference_size,
                   ece=event.calibration_ece)  # fmt: skip

    def __call__(self, scores: ArrayLike) -> Floats:
        return _apply(np.asarray(self.scores), np.asarray(self.probabilities), scores)


def _isotonic(scores: Floats, truths: Floats) -> tuple[Floats, Floats]:
    """scikit-learn's IsotonicRegression(out_of_bounds="clip").fit, without its redundant points:
    inside a run of equal fitted values only the run's ends matter to the linear interpolation, so
    a recorded calibration holds a few dozen points, not one per distinct score."""
    unique, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=truths) / counts  # ties averaged, weighted by their number
    fitted = np.asarray(isotonic_regression(means, weights=counts.astype(float), increasing=True).x, dtype=float)
    same_as_neighbours = np.zeros(len(fitted), dtype=bool)
    same_as_neighbours[1:-1] = (fitted[1:-1] == fitted[:-2]) & (fitted[1:-1] == fitted[2:])
    return unique[~same_as_neighbours], fitted[~same_as_neighbours]


def _apply(at: Floats, fitted: Floats, scores: ArrayLike) -> Floats:
    return np.asarray(np.interp(np.clip(np.asarray(scores, dtype=float), at[0], at[-1]), at, fitted), dtype=float)


def expected_calibration_error(probabilities: Floats, truths: Floats, bins: int = 10) -> float:
    """Σ over equal-width probability bins of (share of outputs) × |mean probability − share critical|."""
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.mean() * abs(probabilities[inside].mean() - truths[inside].mean())
    return float(total)


def calibrate(scores: ArrayLike, critical: ArrayLike, folds: int = 5, seed: int = 0) -> Calibration:
    """The calibration fitted on the whole reference; its ECE on `folds` held-out folds (each fold
    calibrated by a fit on the others), so that a calibration that only fits its own data shows."""
    x = np.asarray(scores, dtype=float)
    y = np.asarray(critical, dtype=float)
    if len(x) < 2 * folds or not 0 < y.sum() < len(y):
        raise NotEstimable(
            f"the reference needs outcomes of both kinds and at least {2 * folds} of them to calibrate; it has "
            f"{len(y)} ({int(y.sum())} critical)"
        )
    order = np.random.default_rng(seed).permutation(len(x))
    held_out = np.empty(len(x))
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        held_out[part] = _apply(*_isotonic(x[rest], y[rest]), x[part])
    at, fitted = _isotonic(x, y)
    return Calibration(
        scores=at.tolist(),
        probabilities=fitted.tolist(),
        reference_size=len(x),
        ece=expected_calibration_error(held_out, y),
    )


def trusted(calibration: Calibration, max_ece: float) -> Calibration:
    """The calibration, if it is good enough to estimate from; else why not."""
    if calibration.ece > max_ece:
        raise NotEstimable(
            f"the calibration's expected calibration error on held-out reference outputs is {calibration.ece:.3f}, "
            f"above the limit of {max_ece:g}: no estimate (a larger reference, or scores that rank outputs better)"
        )
    return calibration


class ChunkEstimate(BaseModel):
    """One chunk's estimate: the expected confusion matrix and each metric with its interval
    (None where the metric's denominator is expected to be 0)."""

    n: int
    tp: float
    fp: float
    fn: float
    tn: float
    metrics: dict[Metric, EstimatedValue | None]


def _ratios(tp: Floats, fp: Floats, fn: Floats, tn: Floats) -> dict[Metric, Floats]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp), "ppv": tp / (tp + fp),
                "npv": tn / (tn + fn)}  # fmt: skip


def estimate(
    probabilities: ArrayLike,
    predicted_critical: ArrayLike,
    level: float = 0.95,
    draws: int = 1000,
    seed: int = 0,
) -> ChunkEstimate:
    """The chunk's estimated metrics from its outputs' calibrated probabilities and predictions."""
    p = np.asarray(probabilities, dtype=float)
    said = np.asarray(predicted_critical, dtype=bool)
    tp, fp = p[said].sum(), (1 - p[said]).sum()
    fn, tn = p[~said].sum(), (1 - p[~said]).sum()
    value = _ratios(*(np.array([v]) for v in (tp, fp, fn, tn)))
    # Truths drawn from the probabilities: what the realised metric may be, if the calibration holds.
    truth = np.random.default_rng(seed).random((draws, len(p))) < p
    tp_d, fn_d = (truth & said).sum(axis=1), (truth & ~said).sum(axis=1)
    fp_d, tn_d = (~truth & said).sum(axis=1), (~truth & ~said).sum(axis=1)
    drawn = _ratios(*(d.astype(float) for d in (tp_d, fp_d, fn_d, tn_d)))
    tail = (1 - level) / 2 * 100
    metrics: dict[Metric, EstimatedValue | None] = {}
    for metric in ESTIMATED:
        v, sample = float(value[metric][0]), drawn[metric][~np.isnan(drawn[metric])]
        if np.isnan(v) or not len(sample):
            metrics[metric] = None
            continue
        low, high = np.percentile(sample, [tail, 100 - tail])
        metrics[metric] = EstimatedValue(value=v, low=float(low), high=float(high))
    return ChunkEstimate(n=len(p), tp=float(tp), fp=float(fp), fn=float(fn), tn=float(tn), metrics=metrics)


def chunks(n: int, size: int) -> list[slice]:
    """Consecutive chunks of `size` outputs, in their order; the last may be smaller."""
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def realised(truths: Sequence[bool], predicted_critical: Sequence[bool]) -> dict[Metric, float | None]:
    """The same metrics on the outcomes once they are known: what an estimate is judged against."""
    t, said = np.asarray(truths, dtype=bool), np.asarray(predicted_critical, dtype=bool)
    counts = (float((t & said).sum()), float((~t & said).sum()), float((t & ~said).sum()), float((~t & ~said).sum()))
    ratios = _ratios(*(np.array([c]) for c in counts))
    return {m: None if np.isnan(ratios[m][0]) else float(ratios[m][0]) for m in ESTIMATED}


# --- on files: `vigil performance estimate` ---------------------------------------------------


class EstimateRow(BaseModel):
    """One chunk of one subgroup: the estimate, and the realised metrics where the file has outcomes."""

    subgroup: dict[str, str]
    chunk: int
    first: int  # the chunk's first and last row in the analysis file (from 0; a subgroup's rows spread)
    last: int
    estimate: ChunkEstimate
    realised: dict[Metric, float | None] | None


class FileEstimate(BaseModel):
    positive: str
    calibration_ece: float
    reference_size: int
    chunk_size: int
    level: float
    rows: list[EstimateRow]


def _check_columns(frame: pd.DataFrame, name: str, needed: Sequence[str]) -> None:
    if missing := [c for c in needed if c not in frame.columns]:
        raise NotEstimable(f"the {name} file has no column {', '.join(map(repr, missing))}")
    if frame["score"].isna().any() or not frame["score"].between(0, 1).all():
        raise NotEstimable(f"the {name} file's scores must all be probabilities between 0 and 1")


def file_calibration(reference: pd.DataFrame, positive: str) -> Calibration:
    """The calibration of a reference file: `score` (the probability of `positive`) and `truth`."""
    _check_columns(reference, "reference", ("score", "truth"))
    if reference["truth"].isna().any():
        raise NotEstimable("the reference file's truths must all be known: a row without one cannot calibrate")
    return calibrate(reference["score"], reference["truth"].astype(str) == positive)


def estimate_files(
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    positive: str,
    attributes: Sequence[str] = (),
    chunk_size: int = 500,
    max_ece: float = 0.05,
    level: float = 0.95,
) -> FileEstimate:
    """CBPE on files: `reference` has `score` (the probability of `positive`), `label` (predicted)
    and `truth`; `analysis` the same, `truth` optional (then the realised metrics are compared).
    Chunks for everyone, then for each value of each attribute."""
    calibration = trusted(file_calibration(reference, positive), max_ece)
    _check_columns(analysis, "analysis", ("score", "label", *attributes))
    analysis = analysis.reset_index(drop=True)  # rows numbered as in the file, from 0
    groups: list[tuple[dict[str, str], pd.DataFrame]] = [({}, analysis)]
    for attribute in attributes:
        groups += [({attribute: str(value)}, part) for value, part in analysis.groupby(attribute, sort=True)]
    rows = []
    for subgroup, frame in groups:
        for number, part in enumerate(chunks(len(frame), chunk_size)):
            piece = frame.iloc[part]
            said = (piece["label"].astype(str) == positive).to_numpy()
            known = "truth" in piece.columns and piece["truth"].notna().all()
            rows.append(EstimateRow(
                subgroup=subgroup, chunk=number, first=int(piece.index[0]), last=int(piece.index[-1]),
                estimate=estimate(calibration(piece["score"]), said, level, seed=number),
                realised=realised((piece["truth"].astype(str) == positive).tolist(), said.tolist()) if known else None,
            ))  # fmt: skip
    return FileEstimate(positive=positive, calibration_ece=calibration.ece, reference_size=calibration.reference_size,
                        chunk_size=chunk_size, level=level, rows=rows)  # fmt: skip


# --- live: a model version's outputs from the store ----------------------------------------------


class Output(NamedTuple):
    """One output as the estimate sees it: the probability its truth is the label, whether the
    model said the label, the truth once it came (None while pending), and its subgroup."""

    score: float
    said: bool
    truth: bool | None
    subgroup: tuple[tuple[str, str], ...] = ()


def score_for(output: InferenceOutput, label: str, labels: Sequence[str]) -> float | None:
    """The probability an output gives `label`: its class score, or for a binary model its score
    (the probability of the critical label)."""
    if label in output.class_scores:
        return output.class_scores[label]
    return output.score if len(labels) == 2 else None


class Backtest(BaseModel):
    """Outputs whose outcome came after the reference: what the estimate said, what came, how far off."""

    estimate: ChunkEstimate
    realised: dict[Metric, float | None]
    error: dict[Metric, float | None]  # estimate minus realised
    covered: dict[Metric, bool | None]  # whether the interval held the realised value


class VersionEstimate(BaseModel):
    model_version: str
    label: str
    subgroup: dict[str, str] = {}  # empty: everyone
    reference_size: int
    reference: str = ""  # what the calibration was fitted on, in words
    calibration_ece: float | None
    not_estimable: str | None = None  # why there is no estimate
    overall: ChunkEstimate | None = None  # all outputs still waiting for their outcome
    pending: list[ChunkEstimate] = []  # the same, per chunk, oldest first
    backtest: list[Backtest] = []


def version_estimates(
    version: str, label: str, outputs: Sequence[Output], reference_size: int, chunk_size: int, max_ece: float,
    level: float, attributes: Sequence[str] = (), uploaded: CalibrationReferenceSet | None = None, depth: int = 1,
) -> list[VersionEstimate]:  # fmt: skip
    """CBPE over a version's outputs in the order they were made: the first `reference_size` with an
    outcome calibrate, unless a reference file was `uploaded` for the version; the pending ones are
    estimated; the other known ones show how far off it is. For everyone, then for each subgroup of
    the attributes and their intersections up to `depth` (as performance counts them), all with the
    one calibration of the version (a subgroup's own reference would be too small to calibrate on)."""
    known = [i for i, o in enumerate(outputs) if o.truth is not None]
    in_reference = set() if uploaded else set(known[:reference_size])
    everyone = VersionEstimate(
        model_version=version, label=label, calibration_ece=None,
        reference_size=uploaded.reference_size if uploaded else len(in_reference),
    )  # fmt: skip
    everyone.reference = (
        f"an uploaded reference ({uploaded.source_name or 'unnamed'}, {uploaded.reference_size} rows)"
        if uploaded
        else f"the version's first {everyone.reference_size} outcomes"
    )
    if not uploaded and len(in_reference) < reference_size:
        everyone.not_estimable = (
            f"{len(in_reference)} outcomes so far; the reference is the version's first {reference_size}"
        )
        return [everyone]
    try:
        if uploaded:
            calibration = Calibration.recorded(uploaded)
        else:
            reference = [outputs[i] for i in sorted(in_reference)]
            calibration = calibrate([o.score for o in reference], [bool(o.truth) for o in reference])
        everyone.calibration_ece = calibration.ece
        trusted(calibration, max_ece)
    except NotEstimable as why:
        everyone.not_estimable = str(why)
        return [everyone]
    rest = [o for i, o in enumerate(outputs) if i not in in_reference]
    members: dict[Subgroup, list[Output]] = {OVERALL: rest}
    for output in rest:
        for group in subgroups_of(dict(output.subgroup), attributes, depth)[1:]:
            members.setdefault(group, []).append(output)
    found = []
    for group in sorted(members, key=lambda g: (len(g), g)):
        fresh: dict[str, object] = {"subgroup": dict(group), "overall": None, "pending": [], "backtest": []}
        row = everyone.model_copy(update=fresh) if group else everyone
        _estimate_into(row, calibration, members[group], chunk_size, level)
        found.append(row)
    return found


def _estimate_into(row: VersionEstimate, calibration: Calibration, outputs: Sequence[Output], chunk_size: int,
                   level: float) -> None:  # fmt: skip
    pending = [o for o in outputs if o.truth is None]
    later = [o for o in outputs if o.truth is not None]
    if pending:
        row.overall = estimate(calibration([o.score for o in pending]), [o.said for o in pending], level)
    row.pending = [estimate(calibration([o.score for o in piece]), [o.said for o in piece], level, seed=n)
                   for n, piece in enumerate(_chunked(pending, chunk_size))]  # fmt: skip
    for n, piece in enumerate(_chunked(later, chunk_size)):
        said = [o.said for o in piece]
        guess = estimate(calibration([o.score for o in piece]), said, level, seed=n)
        row.backtest.append(_judged(guess, realised([bool(o.truth) for o in piece], said)))


def _chunked(outputs: Sequence[Output], size: int) -> list[Sequence[Output]]:
    return [outputs[part] for part in chunks(len(outputs), size)]


def _judged(guess: ChunkEstimate, real: dict[Metric, float | None]) -> Backtest:
    error: dict[Metric, float | None] = {}
    covered: dict[Metric, bool | None] = {}
    for metric in ESTIMATED:
        said, came = guess.metrics[metric], real[metric]
        error[metric] = None if said is None or came is None else said.value - came
        covered[metric] = None if said is None or came is None else said.low <= came <= said.high
    return Backtest(estimate=guess, realised=real, error=error, covered=covered)


NAMESPACE = uuid.UUID("5d0e8f3c-2b7a-4c1e-9f60-8a3b1d2c4e57")


def estimated_event(
    model_id: str, found: VersionEstimate, metric: Metric, threshold: float | None, window_days: int | None,
    now: datetime,
) -> PerformanceEstimated | None:  # fmt: skip
    """The event of a version's estimate over all its pending outputs (None without one). Its id
    follows from what it says: the same estimate made twice is one event."""
    if found.overall is None or found.calibration_ece is None:
        return None
    estimates = {m: e for m, e in found.overall.metrics.items() if e is not None}
    primary = estimates.get(metric)
    below = threshold is not None and primary is not None and primary.value < threshold
    tested = sum(t.estimate.n for t in found.backtest)
    error = {m: sum(t.estimate.n * e for t in found.backtest if (e := t.error[m]) is not None) / tested
             for m in ESTIMATED if tested and all(t.error[m] is not None for t in found.backtest)}  # fmt: skip
    said = "—" if primary is None else f"{primary.value:.3f} ({primary.low:.3f}–{primary.high:.3f})"
    off = f"; the estimate was off by {error[metric]:+.3f} on {tested} later outcomes" if metric in error else ""
    summary = (f"ESTIMATED (not realised) {metric} for {found.label!r} of {model_id} {found.model_version}: {said} "
               f"on {found.overall.n} outputs awaiting their outcome"
               + (f", below {threshold:g}" if below else "") + off)  # fmt: skip
    identity = f"{model_id}/{found.model_version}/{found.label}/{found.overall.n}/{summary}"
    return PerformanceEstimated(
        event_id=uuid.uuid5(NAMESPACE, identity), occurred_at=now, model_id=model_id,
        model_version=found.model_version, label=found.label, outputs=found.overall.n, window_days=window_days,
        estimates=estimates, metric=metric, threshold=threshold, below_threshold=below,
        reference_size=found.reference_size, reference=found.reference, calibration_ece=found.calibration_ece,
        backtest_outputs=tested, backtest_error=error, summary=summary,
    )  # fmt: skip


def estimate_alert(event: PerformanceEstimated, was_below: bool) -> AlertRaised | None:
    """A warning when the estimate falls below the threshold, its end when it is back: an estimate
    never pages as critical and never opens an incident."""
    if event.below_threshold == was_below:
        return None
    labels = {"metric": event.metric, "label": event.label, "estimated": "true"}
    return alert_for(event, "PerformanceEstimateLow", "warning", event.summary, model_id=event.model_id,
                     model_version=event.model_version, labels=labels, resolved=not event.below_threshold)  # fmt: skip
