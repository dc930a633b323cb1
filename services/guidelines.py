"""The guideline audit over the event store (see vigil/guidelines.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.store import reads
from vigil.events import InferenceMade, ModelVersionReleased
from vigil.guidelines import GuidelineAudit, affected, audit
from vigil.incidents import InvalidInput


class UnknownGuideline(InvalidInput):
    pass


async def guideline_audit(engine: AsyncEngine, guideline_id: str, lookback_days: int) -> GuidelineAudit:
    """The latest GuidelineChanged of that id against every registered model it names."""
    async with engine.connect() as conn:
        guideline = await reads.guideline(conn, guideline_id)
        if guideline is None:
            raise UnknownGuideline(f"no guideline {guideline_id!r} is recorded (emit a GuidelineChanged event)")
        registered = await reads.registered(conn)
        names = [m.model_id for m in affected(guideline, registered.values())]
        releases = await reads.of_type(conn, ModelVersionReleased)
        since = guideline.effective_at - timedelta(days=lookback_days)
        made = await reads.of_type(conn, InferenceMade, model_ids=names, since=since)
        followed_up = await reads.followed_up(conn, names, since)
    return audit(guideline, registered.values(), releases, made, followed_up, lookback_days)
