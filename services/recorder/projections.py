"""Projections kept in step with the event store, in the same transaction as the append.

Every projection is a fold of core functions over events, so `vigil replay` can drop and rebuild
it and get the same table.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recorder.tables import incidents
from vigil.events import INCIDENT_EVENTS, Event
from vigil.incidents import Incident, evolve


def incident_row(state: Incident, last_seq: int) -> dict:
    harm = state.triage.harm if state.triage else state.reported_harm
    return {
        "incident_id": str(state.incident_id),
        "model_id": state.model_id,
        "model_version": state.model_version,
        "status": state.status,
        "source": state.source,
        "country": state.country,
        "aware_at": state.aware_at,
        "harm": harm,
        "reportable": state.reportable,
        "next_due_at": state.next_due_at(),
        "overdue": state.overdue(),
        "version": state.version,
        "last_seq": last_seq,
        "state": state.model_dump(mode="json"),
    }


async def project_incidents(conn: AsyncConnection, stored: Iterable[tuple[int, Event]]) -> None:
    touched: dict[str, tuple[Incident | None, int]] = {}
    for seq, event in stored:
        if not isinstance(event, INCIDENT_EVENTS):
            continue
        key = str(event.incident_id)  # type: ignore[attr-defined]
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
