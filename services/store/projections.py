"""Projections kept in step with the event store, in the same transaction as the append.

Every projection is a fold of core functions over events, so `vigil replay` can drop and rebuild
it and get the same table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.store.tables import incidents
from vigil.events import INCIDENT_EVENTS, Event
from vigil.incidents import Incident, evolve, summary_of


def incident_row(state: Incident, last_seq: int) -> dict[str, Any]:
    summary = summary_of(state).model_dump()
    return summary | {
        "incident_id": str(state.incident_id),
        "last_seq": last_seq,
        "state": state.model_dump(mode="json"),
    }


async def project_incidents(conn: AsyncConnection, stored: Iterable[tuple[int, Event]]) -> None:
    touched: dict[str, tuple[Incident | None, int]] = {}
    for seq, event in stored:
        if not isinstance(event, INCIDENT_EVENTS):
            continue
        key = str(event.incident_id)
        if key not in touched:
            row = (await conn.execute(select(incidents.c.state).where(incidents.c.incident_id == key))).first()
            touched[key] = (Incident.model_validate(row.state) if row else None, 0)
        state, _ = touched[key]
        touched[key] = (evolve(state, event), seq)
    rows = [incident_row(state, seq) for state, seq in touched.values() if state is not None]
    if rows:
        stmt = insert(incidents)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["incident_id"], set_={c: stmt.excluded[c] for c in rows[0] if c != "incident_id"}
            ),
            rows,
        )
