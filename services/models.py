"""Per-model operations over the event store: drift references, subgroup performance, oversight."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import cast, func, select
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncEngine

from services.event_service import EventService
from services.guidelines import guideline_audit
from services.recorder.tables import events
from vigil.drift import DriftInputError
from vigil.drift_monitor import reference_event, rows_of
from vigil.drift_windows import profiles_of
from vigil.events import DriftReferenceSet, InferenceMade, ModelRegistered, OutcomeObserved, ReviewRecorded
from vigil.guidelines import GuidelineAudit
from vigil.incidents import InvalidInput
from vigil.oversight import ModelOversightReport, tallies_of
from vigil.oversight import report as oversight_report
from vigil.performance import Capped, ModelPerformance, Pair, positive_labels, report, tally
from vigil.performance_monitor import pair_of, refused
from vigil.policy import Policy


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

    async def performance(
        self, policy: Policy, model_id: str, version: str | None, by: list[str], window_days: int | None, now: datetime
    ) -> ModelPerformance:
        return await performance(self.engine, policy, model_id, version, by, window_days, now)

    async def oversight(
        self, policy: Policy, model_id: str, version: str | None, by: str | None, window_days: int | None, now: datetime
    ) -> ModelOversightReport:
        return await oversight(self.engine, policy, model_id, version, by, window_days, now)

    async def guideline_audit(self, guideline_id: str, lookback_days: int) -> GuidelineAudit:
        return await guideline_audit(self.engine, guideline_id, lookback_days)


class UnknownModel(InvalidInput):
    pass


def check_attributes(by: list[str], recorded: set[str], any_recorded: bool) -> None:
    """A grouping attribute no recorded inference carries is a typo, not an empty table."""
    unknown = [a for a in by if a not in recorded]
    if unknown and any_recorded:
        known = ", ".join(sorted(recorded)) or "none"
        raise InvalidInput(f"no recorded inference of this model has {', '.join(unknown)}; known: {known}")


def _joined(model_id: str, version: str | None, since: datetime | None):
    """Inferences with their outcomes, in the order the outcomes were recorded."""
    inference, outcome = events.alias("inference"), events.alias("outcome")
    query = (
        select(inference.c.body, outcome.c.body)
        .join(outcome, cast(outcome.c.payload["inference_id"].astext, UUID(as_uuid=False)) == inference.c.event_id)
        .where(outcome.c.event_type == "OutcomeObserved", inference.c.event_type == "InferenceMade")
        .where(inference.c.model_id == model_id)
        .order_by(outcome.c.seq)
    )
    if version is not None:
        query = query.where(inference.c.payload["model_version"].astext == version)
    if since is not None:
        query = query.where(inference.c.occurred_at >= since)
    return query


def _unmatched(model_id: str):
    inference, outcome = events.alias("inference"), events.alias("outcome")
    exists = select(inference.c.seq).where(
        inference.c.event_type == "InferenceMade",
        inference.c.event_id == cast(outcome.c.payload["inference_id"].astext, UUID(as_uuid=False)),
    )
    return (
        select(func.count())
        .select_from(outcome)
        .where(outcome.c.event_type == "OutcomeObserved", outcome.c.model_id == model_id, ~exists.exists())
    )


async def _registered(conn, model_id: str) -> ModelRegistered:
    registered = (
        await conn.execute(
            select(events.c.body)
            .where(events.c.event_type == "ModelRegistered", events.c.model_id == model_id)
            .order_by(events.c.seq.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if registered is None:
        raise UnknownModel(f"no model {model_id!r} is registered")
    return ModelRegistered.model_validate_json(registered)


async def performance(
    engine: AsyncEngine,
    policy: Policy,
    model_id: str,
    version: str | None,
    by: list[str],
    window_days: int | None,
    now: datetime,
) -> ModelPerformance:
    """Subgroup performance from the event store: recorded outcomes joined to their inferences,
    over the last `window_days` or since release."""
    async with engine.connect() as conn:
        model = await _registered(conn, model_id)
        since = now - timedelta(days=window_days) if window_days else None
        rows = (await conn.execute(_joined(model_id, version, since))).all()
        unmatched = (await conn.execute(_unmatched(model_id))).scalar_one()
    settings = policy.for_model(model_id).performance
    capped = Capped(settings.max_values)
    pairs: list[Pair] = []
    counted: set[uuid.UUID] = set()
    attributes: set[str] = set()
    for inference_body, outcome_body in rows:
        outcome = OutcomeObserved.model_validate_json(outcome_body)
        # As the worker does: the first outcome that fits the model counts.
        if outcome.inference_id in counted or outcome.model_id != model_id or refused(outcome, model):
            continue
        counted.add(outcome.inference_id)
        inference = InferenceMade.model_validate_json(inference_body)
        attributes.update(inference.subgroup)
        pairs.append(pair_of(inference, outcome, capped.apply(inference.subgroup, by)))
    check_attributes(by, attributes, bool(pairs))
    positives = positive_labels(model.labels, model.critical_labels)
    table = tally(pairs, positives, by, max(1, len(by)))
    return ModelPerformance(
        **dict(report(table, settings.rules(model.risk_class), by)),
        model_id=model_id,
        model_version=version,
        window_days=window_days,
        outcomes=len(pairs),
        outcomes_without_inference=unmatched,
    )


async def oversight(
    engine: AsyncEngine,
    policy: Policy,
    model_id: str,
    version: str | None,
    by: str | None,
    window_days: int | None,
    now: datetime,
    until: datetime | None = None,
) -> ModelOversightReport:
    """Human oversight from the event store, as of `now`: the model's inferences over the
    `window_days` before `until` (default: now; none: since release), each with its first review."""
    until = until or now
    since = window_days and until - timedelta(days=window_days)
    inferences = select(events.c.body).where(
        events.c.event_type == "InferenceMade", events.c.model_id == model_id, events.c.occurred_at < until
    )
    reviews = select(events.c.body).where(events.c.event_type == "ReviewRecorded", events.c.model_id == model_id)
    if version is not None:
        inferences = inferences.where(events.c.payload["model_version"].astext == version)
    if since:  # a review comes after its inference, so no review of the window's outputs is left out
        inferences = inferences.where(events.c.occurred_at >= since)
        reviews = reviews.where(events.c.occurred_at >= since)
    async with engine.connect() as conn:
        await _registered(conn, model_id)
        made = [InferenceMade.model_validate_json(b) for (b,) in await conn.execute(inferences.order_by(events.c.seq))]
        seen = [ReviewRecorded.model_validate_json(b) for (b,) in await conn.execute(reviews.order_by(events.c.seq))]
    check_attributes([by] if by else [], {"deployment", *(a for m in made for a in m.subgroup)}, bool(made))
    settings = policy.for_model(model_id).oversight
    tallies, pending = tallies_of(made, seen, settings, now, by)
    span = f"{window_days} days to {until:%Y-%m-%d}" if window_days else f"since release, to {until:%Y-%m-%d}"
    return ModelOversightReport(
        **dict(oversight_report(tallies, pending, settings, span)),
        model_id=model_id,
        model_version=version,
        window_days=window_days,
        by=by,
        review_within_minutes=settings.review_within_minutes,
    )
