"""The live model card of a registered model, from the event store (vigil/model_card.py says what
it holds). The API, the CLI and the quarterly export all use this."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.models import oversight, performance, readers
from services.store import reads
from vigil.events import (
    DataQualityChanged,
    DataQualityRestored,
    DisparityDetected,
    DisparityResolved,
    DriftDetected,
    DriftResolved,
    GuidelineChanged,
    IncidentCandidateRaised,
    IncidentReported,
    OversightRestored,
    OversightViolation,
    ReaderFindingRaised,
    ReaderFindingResolved,
    SourceResumed,
    SourceSilent,
    ThresholdBreached,
    ThresholdRestored,
    TransparencyRestored,
    TransparencyViolation,
    TrendDetected,
)
from vigil.footprint import footprint
from vigil.incidents import InvalidInput, fold
from vigil.model_card import LiveModelCard, build_card
from vigil.policy import Policy
from vigil.registry import UnknownModel

SIGNALS = (ThresholdBreached, ThresholdRestored, DisparityDetected, DisparityResolved, OversightViolation,
           OversightRestored, TransparencyViolation, TransparencyRestored, SourceSilent, SourceResumed,
           DataQualityChanged, DataQualityRestored, ReaderFindingRaised, ReaderFindingResolved,
           TrendDetected)  # fmt: skip
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def model_card(
    engine: AsyncEngine, policy: Policy, model_id: str, version: str | None, as_of: datetime | None, now: datetime
) -> LiveModelCard:
    """One version's card (the current one when `version` is None), as of a moment or now."""
    moment = min(as_of, now) if as_of else now
    async with engine.connect() as conn:
        record = (await reads.registry(conn, model_id, as_of)).get(model_id)
        if record is None:
            when = f" as of {as_of.isoformat()}" if as_of else ""
            raise UnknownModel(f"no model {model_id!r} is registered{when}")
        if version is not None and record.version(version) is None:
            released = ", ".join(v.model_version for v in record.versions) or "none"
            raise InvalidInput(f"{model_id} has no version {version!r}; released: {released}")
        release = record.version(version) if version else (record.versions[-1] if record.versions else None)
        name = release.model_version if release else None
        drift = await reads.of_type(conn, DriftDetected, DriftResolved, model_id=model_id, version=name,
                                    recorded_by=as_of)  # fmt: skip
        signals = [s for s in await reads.of_type(conn, *SIGNALS, model_id=model_id, recorded_by=as_of)
                   if getattr(s, "model_version", name) == name]  # fmt: skip
        opened = await reads.of_type(conn, IncidentReported, IncidentCandidateRaised, model_id=model_id,
                                     recorded_by=as_of)  # fmt: skip
        ids = {e.incident_id for e in opened if isinstance(e, IncidentReported | IncidentCandidateRaised)}
        incidents = [
            state
            for incident_id in sorted(ids)
            if (state := fold(await reads.incident_events(conn, incident_id, as_of))) is not None
            and state.model_version == (name or state.model_version)
        ]
        guidelines = await reads.of_type(conn, GuidelineChanged, recorded_by=as_of)
        start = release.released_at if release else EPOCH
        usage = await reads.InPeriod(conn, start, moment).usage(name, model_id)
    settings = policy.for_model(model_id)
    measured = None
    if usage:
        u = usage[0]
        grid = settings.footprint.grid_g_co2e_per_kwh
        measured = footprint(u.inferences, u.energy_reported, u.energy_wh, u.tokens_in, u.tokens_out, grid)
    return build_card(
        record,
        name,
        performance=await performance(engine, policy, model_id, name, None, None, moment, as_of),
        oversight=await oversight(engine, policy, model_id, name, "deployment", None, moment, as_of=as_of),
        readers=await readers(engine, policy, model_id, name, None, None, moment, as_of=as_of),
        drift=drift,
        signals=signals,
        footprint=measured,
        incidents=sorted(incidents, key=lambda i: i.aware_at),
        guidelines=guidelines,
        plan=settings.plan,
        as_of=as_of,
        now=now,
    )
