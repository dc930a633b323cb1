"""The guideline audit over the event store (see vigil/guidelines.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import cast, select
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncEngine

from services.recorder.tables import events
from vigil.events import GuidelineChanged, InferenceMade, ModelRegistered, ModelVersionReleased
from vigil.guidelines import GuidelineAudit, affected, audit
from vigil.incidents import InvalidInput


class UnknownGuideline(InvalidInput):
    pass


async def guideline_audit(engine: AsyncEngine, guideline_id: str, lookback_days: int) -> GuidelineAudit:
    """The latest GuidelineChanged of that id against every registered model it names."""
    async with engine.connect() as conn:

        async def bodies(event_type: str, *where) -> list[str]:
            query = select(events.c.body).where(events.c.event_type == event_type, *where).order_by(events.c.seq)
            return [b for (b,) in await conn.execute(query)]

        found = await bodies("GuidelineChanged", events.c.payload["guideline_id"].astext == guideline_id)
        if not found:
            raise UnknownGuideline(f"no guideline {guideline_id!r} is recorded (emit a GuidelineChanged event)")
        guideline = GuidelineChanged.model_validate_json(found[-1])
        registered = {m.model_id: m for m in map(ModelRegistered.model_validate_json, await bodies("ModelRegistered"))}
        names = [m.model_id for m in affected(guideline, registered.values())]
        releases = [ModelVersionReleased.model_validate_json(b) for b in await bodies("ModelVersionReleased")]
        since = guideline.effective_at - timedelta(days=lookback_days)
        made = [
            InferenceMade.model_validate_json(b)
            for b in await bodies("InferenceMade", events.c.model_id.in_(names), events.c.occurred_at >= since)
        ]
        followed = select(cast(events.c.payload["inference_id"].astext, UUID(as_uuid=True))).where(
            events.c.event_type == "OutcomeObserved", events.c.model_id.in_(names), events.c.occurred_at >= since
        )
        followed_up = set((await conn.execute(followed)).scalars())
    return audit(guideline, registered.values(), releases, made, followed_up, lookback_days)
