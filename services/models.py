"""Per-model operations over the event store: drift references, subgroup performance, oversight."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

import pandas as pd
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.event_service import EventService
from services.store import reads
from vigil.drift import DriftInputError
from vigil.drift_monitor import reference_event, rows_of
from vigil.drift_windows import profiles_of
from vigil.events import (
    CalibrationReferenceSet,
    DriftReferenceSet,
    InferenceMade,
    ModelRegistered,
    OutcomeObserved,
    ReviewRecorded,
)
from vigil.incidents import InvalidInput
from vigil.oversight import EVERYONE, ModelOversightReport, tallies_of
from vigil.oversight import report as oversight_report
from vigil.performance import Capped, ModelPerformance, Pair, positive_labels, report, tally
from vigil.performance_estimate import (
    NotEstimable,
    Output,
    VersionEstimate,
    file_calibration,
    score_for,
    trusted,
    version_estimates,
)
from vigil.performance_monitor import pair_of, refused
from vigil.policy import Policy
from vigil.readers import ModelReaders, ReaderCase, reader_report
from vigil.registry import UnknownModel, refused_review
from vigil.transparency import with_transparency


class ModelService(EventService):
    async def set_reference(
        self, policy: Policy, model_id: str, version: str, frame: pd.DataFrame, source_name: str, now: datetime
    ) -> DriftReferenceSet:
        """Profile a reference file and record it: the worker measures the version against it from now on."""
        await self.check_registered(model_id)
        drift = policy.for_model(model_id).drift
        profiles = profiles_of(rows_of(frame), drift.bins, drift.max_categories)
        if not profiles:
            raise DriftInputError("no column of the reference file has a value")
        event = reference_event(model_id, version, profiles, "upload", source_name, now)
        await self._publish_and_wait([event])
        return event

    async def set_calibration_reference(
        self, policy: Policy, model_id: str, version: str, label: str, body: bytes, frame: pd.DataFrame,
        source_name: str, now: datetime,
    ) -> CalibrationReferenceSet:  # fmt: skip
        """Calibrate a model version's scores for `label` on a file of scores with known outcomes and
        record the fit: its estimated performance is calibrated on it from now on. A file that
        cannot calibrate well enough for the policy is refused with the reason, and nothing is recorded."""
        async with self.engine.connect() as conn:
            model = await _registered(conn, model_id)
        if label not in positive_labels(model.labels, model.critical_labels):
            critical = ", ".join(positive_labels(model.labels, model.critical_labels))
            raise InvalidInput(f"{label!r} is not a critical label of {model_id}, whose estimates are for: {critical}")
        try:
            fit = trusted(file_calibration(frame, label), policy.for_model(model_id).performance.estimate_max_ece)
        except NotEstimable as why:
            raise InvalidInput(f"the reference file cannot calibrate: {why}") from None
        event = CalibrationReferenceSet(
            event_id=uuid.uuid4(), occurred_at=now, model_id=model_id, model_version=version, label=label,
            source_name=source_name, file_sha256=hashlib.sha256(body).hexdigest(), scores=fit.scores,
            probabilities=fit.probabilities, reference_size=fit.reference_size, calibration_ece=fit.ece,
        )  # fmt: skip
        await self._publish_and_wait([event])
        return event


def check_attributes(by: list[str], recorded: set[str], any_recorded: bool) -> None:
    """A grouping attribute no recorded inference carries is a typo, not an empty table."""
    unknown = [a for a in by if a not in recorded]
    if unknown and any_recorded:
        known = ", ".join(sorted(recorded)) or "none"
        raise InvalidInput(f"no recorded inference of this model has {', '.join(unknown)}; known: {known}")


async def _registered(conn: AsyncConnection, model_id: str) -> ModelRegistered:
    registered = await reads.registration(conn, model_id)
    if registered is None:
        raise UnknownModel(f"no model {model_id!r} is registered")
    return registered


async def _admitted_reviews(
    conn: AsyncConnection, model: ModelRegistered, since: datetime | None, as_of: datetime | None
) -> list[ReviewRecorded]:
    """The model's reviews the worker counts: one with a final label outside the label set is a
    dead letter there (vigil.registry.refused_review), though the store keeps it as it came."""
    found = await reads.of_type(conn, ReviewRecorded, model_id=model.model_id, since=since, recorded_by=as_of)
    return [review for review in found if refused_review(review, model) is None]


async def _counted_pairs(
    conn: AsyncConnection, model: ModelRegistered, version: str | None, since: datetime | None, as_of: datetime | None
) -> list[tuple[InferenceMade, OutcomeObserved]]:
    """A model's inferences with their outcome, as the worker counts them: the first outcome of an
    inference that fits the model."""
    joined = await reads.outcomes_joined(conn, model.model_id, version, since, recorded_by=as_of)
    counted: set[uuid.UUID] = set()
    kept = []
    for inference, outcome in joined:
        if outcome.inference_id in counted or outcome.model_id != model.model_id or refused(outcome, model):
            continue
        counted.add(outcome.inference_id)
        kept.append((inference, outcome))
    return kept


async def performance(
    engine: AsyncEngine,
    policy: Policy,
    model_id: str,
    version: str | None,
    by: list[str] | None,
    window_days: int | None,
    now: datetime,
    as_of: datetime | None = None,
) -> ModelPerformance:
    """Subgroup performance from the event store: recorded outcomes joined to their inferences,
    over the last `window_days` or since release, from what was recorded by `as_of` if given.
    `by`: the attributes, intersected; None: each attribute of the policy that the model's
    inferences carry, on its own (the model card's view)."""
    async with engine.connect() as conn:
        model = await _registered(conn, model_id)
        since = now - timedelta(days=window_days) if window_days else None
        kept = await _counted_pairs(conn, model, version, since, as_of)
        unmatched = await reads.outcomes_without_inference(conn, model_id)
    settings = policy.for_model(model_id).performance
    capped = Capped(settings.max_values)
    attributes = {a for inference, _ in kept for a in inference.subgroup}
    shown: list[str] | None = by  # the rows `report` keeps: over exactly these attributes (None: all)
    if by is None:
        by, depth = [a for a in settings.attributes if a in attributes], 1
    else:
        check_attributes(by, attributes, bool(kept))
        depth = max(1, len(by))
    pairs: list[Pair] = [
        pair_of(inference, outcome, capped.apply(inference.subgroup, by)) for inference, outcome in kept
    ]
    positives = positive_labels(model.labels, model.critical_labels)
    table = tally(pairs, positives, by, depth)
    return ModelPerformance(
        **dict(report(table, settings.rules(model.risk_class), shown)),
        model_id=model_id,
        model_version=version,
        window_days=window_days,
        outcomes=len(pairs),
        outcomes_without_inference=unmatched,
    )


class ModelEstimate(BaseModel):
    """A model's estimated performance (CBPE) per version and critical label, over its outputs made in the window."""

    model_id: str
    window_days: int | None
    estimated: bool = Field(True, description="ESTIMATED from calibrated scores: never a realised figure")
    versions: list[VersionEstimate]
    without_score: int = Field(description="outputs in the window that carry no score for a critical label")


async def performance_estimate(
    engine: AsyncEngine,
    policy: Policy,
    model_id: str,
    version: str | None,
    window_days: int | None,
    now: datetime,
    as_of: datetime | None = None,
    depth: int | None = None,
) -> ModelEstimate:
    """CBPE from the event store: each version's first outcomes (or its uploaded reference)
    calibrate its scores; its outputs made in the window that still wait for their outcome (as of
    `as_of`, if given) are estimated, for everyone and each subgroup of the policy's attributes and
    their intersections up to `depth` (default: the policy's); the ones whose outcome came after
    the reference show how far off the estimate is."""
    settings = policy.for_model(model_id).performance
    async with engine.connect() as conn:
        model = await _registered(conn, model_id)
        truths = {i.event_id: o.label for i, o in await _counted_pairs(conn, model, version, None, as_of)}
        made = await reads.of_type(conn, InferenceMade, model_id=model_id, version=version, recorded_by=as_of)
        references = await reads.of_type(conn, CalibrationReferenceSet, model_id=model_id, version=version,
                                         recorded_by=as_of)  # fmt: skip
    uploaded = {(r.model_version, r.label): r for r in sorted(references, key=lambda r: r.occurred_at)}  # the last
    since = now - timedelta(days=window_days) if window_days else None
    made.sort(key=lambda i: i.occurred_at)
    labels = positive_labels(model.labels, model.critical_labels)
    # The policy's attributes that the model's inferences carry.
    attributes = [a for a in settings.attributes if any(a in i.subgroup for i in made)]
    capped = Capped(settings.max_values)
    found = []
    for label in labels:
        for each in sorted({i.model_version for i in made}):
            outputs, reference = [], uploaded.get((each, label))
            for inference in (i for i in made if i.model_version == each):
                score = score_for(inference.output, label, model.labels)
                truth = truths.get(inference.event_id)
                # The reference is an uploaded file or the version's first outcomes, whenever they came;
                # the rest, from the window.
                recent = since is None or inference.occurred_at >= since
                if score is not None and (recent or (truth is not None and reference is None)):
                    said = inference.output.label == label
                    subgroup = tuple(capped.apply(inference.subgroup, attributes).items())
                    outputs.append(Output(score, said, None if truth is None else truth == label, subgroup))
            found += version_estimates(
                each, label, outputs, settings.estimate_reference, settings.estimate_chunk, settings.estimate_max_ece,
                settings.confidence, attributes, reference, settings.depth if depth is None else depth,
            )  # fmt: skip
    in_window = [i for i in made if since is None or i.occurred_at >= since]
    without_score = sum(all(score_for(i.output, b, model.labels) is None for b in labels) for i in in_window)
    return ModelEstimate(model_id=model_id, window_days=window_days, versions=found, without_score=without_score)


async def oversight(
    engine: AsyncEngine,
    policy: Policy,
    model_id: str,
    version: str | None,
    by: str | None,
    window_days: int | None,
    now: datetime,
    until: datetime | None = None,
    as_of: datetime | None = None,
) -> ModelOversightReport:
    """Human oversight from the event store, as of `now`: the model's inferences over the
    `window_days` before `until` (default: now; none: since release), each with its first review;
    from what was recorded by `as_of` if given."""
    until = until or now
    since = until - timedelta(days=window_days) if window_days else None
    async with engine.connect() as conn:
        model = await _registered(conn, model_id)
        made = await reads.of_type(conn, InferenceMade, model_id=model_id, version=version, since=since, until=until,
                                   recorded_by=as_of)  # fmt: skip
        # A review comes after its inference, so no review of the window's outputs is left out.
        seen = await _admitted_reviews(conn, model, since, as_of)
    check_attributes([by] if by else [], {"deployment", *(a for m in made for a in m.subgroup)}, bool(made))
    settings = policy.for_model(model_id).oversight
    transparency = policy.for_model(model_id).transparency.for_risk_class(model.risk_class)
    tallies, pending = tallies_of(made, seen, settings, transparency, now, by)
    span = f"{window_days} days to {until:%Y-%m-%d}" if window_days else f"since release, to {until:%Y-%m-%d}"
    found = oversight_report(tallies, pending, settings, span)
    found = with_transparency(found, tallies[EVERYONE], transparency, span)
    return ModelOversightReport(
        **dict(found),
        model_id=model_id,
        model_version=version,
        window_days=window_days,
        by=by,
        review_within_minutes=settings.review_within_minutes,
    )


async def readers(
    engine: AsyncEngine,
    policy: Policy,
    model_id: str,
    version: str | None,
    by: list[str] | None,
    window_days: int | None,
    now: datetime,
    as_of: datetime | None = None,
) -> ModelReaders:
    """The model alone against the clinician with it: each reviewed output with a final label and a
    known truth (its first review, its first outcome that fits the model), per critical label and
    each attribute of `by` (None: the policy's attributes the inferences carry); from what was
    recorded by `as_of` if given."""
    since = now - timedelta(days=window_days) if window_days else None
    async with engine.connect() as conn:
        model = await _registered(conn, model_id)
        kept = await _counted_pairs(conn, model, version, since, as_of)
        reviews = await _admitted_reviews(conn, model, since, as_of)
    first_review: dict[uuid.UUID, ReviewRecorded] = {}
    for review in reviews:
        first_review.setdefault(review.inference_id, review)
    settings = policy.for_model(model_id).performance
    capped, cases, without = Capped(settings.max_values), [], 0
    attributes = {a for inference, _ in kept for a in inference.subgroup}
    wanted = [a for a in settings.attributes if a in attributes] if by is None else by
    check_attributes(wanted, attributes, bool(kept))
    for inference, known in kept:
        if (seen := first_review.get(inference.event_id)) is None:
            continue
        if seen.final_label is None:
            without += 1
            continue
        subgroup = capped.apply(inference.subgroup, wanted)
        cases.append(ReaderCase(subgroup, inference.output.label, seen.final_label, known.label, seen.decision))
    found = reader_report(cases, positive_labels(model.labels, model.critical_labels), wanted, without,
                          policy.for_model(model_id).readers)  # fmt: skip
    return ModelReaders(**dict(found), model_id=model_id, model_version=version, window_days=window_days)
