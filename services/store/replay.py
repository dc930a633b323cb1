"""`vigil replay`: drop the projections and rebuild them from the event store."""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.store.projections import incident_row
from services.store.tables import events, incidents
from vigil.events import INCIDENT_EVENTS
from vigil.incidents import Incident, evolve
from vigil.validation import parse

INCIDENT_TYPES = [cls.model_fields["event_type"].default for cls in INCIDENT_EVENTS]


async def replay_incidents(engine: AsyncEngine, on_progress: Callable[[int, int], None] | None = None) -> int:
    """Rebuilds the incidents table in one transaction; returns the number of incidents."""
    where = events.c.event_type.in_(INCIDENT_TYPES)
    async with engine.begin() as conn:
        total = (await conn.execute(select(func.count()).select_from(events).where(where))).scalar_one()
        states: dict[str, tuple[Incident | None, int]] = {}
        done = 0
        result = await conn.stream(select(events.c.seq, events.c.body).where(where).order_by(events.c.seq))
        async for seq, body in result:
            event = parse(json.loads(body))
            assert isinstance(event, INCIDENT_EVENTS)  # what the query selects
            key = str(event.incident_id)
            states[key] = (evolve(states.get(key, (None, 0))[0], event), seq)
            done += 1
            if on_progress and (done % 200 == 0 or done == total):
                on_progress(done, total)
        await conn.execute(delete(incidents))
        rows = [incident_row(state, seq) for state, seq in states.values() if state is not None]
        if rows:
            await conn.execute(incidents.insert(), rows)
        return len(rows)
