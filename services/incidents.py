"""Incident commands and queries over the event store. The API and the CLI both use this.

A command runs under a per-incident advisory lock: fold the incident's stored events, `decide`,
publish the new events through Kafka like every other event, and wait until the recorder has
stored them, so the caller reads its own write. Event ids are deterministic (vigil.incidents), so
a retried command is recorded once.
"""

from __future__ import annotations

import json
from datetime import datetime
from uuid import UUID, uuid4

from pydantic import Field
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.event_service import EventService
from services.recorder.tables import events, incidents
from vigil.events import (
    Event,
    IncidentReported,
    IncidentViewed,
    ReportType,
)
from vigil.incidents import Command, DomainError, Incident, IncidentSummary, Triage, check_awareness, decide, fold
from vigil.reports.builders import REPORT_FORMATS, Fda3500aReport, MirReport
from vigil.reports.models import ModelCard, model_card
from vigil.trends import NON_SERIOUS, trend_events
from vigil.validation import parse


class InboxEntry(IncidentSummary):
    last_seq: int = Field(description="the store position of the last event folded into the incident")


class UnknownIncident(DomainError):
    pass


class IncidentService(EventService):
    async def _events_of(self, conn: AsyncConnection, incident_id: UUID, as_of: datetime | None) -> list[Event]:
        query = (
            select(events.c.body)
            .where(events.c.payload["incident_id"].astext == str(incident_id))
            .where(text("payload ? 'incident_id'"))
            .order_by(events.c.seq)
        )
        if as_of is not None:
            # "What did we know, and when": what Vigil had recorded by then.
            query = query.where(events.c.recorded_at <= as_of)
        return [parse(json.loads(body)) for (body,) in await conn.execute(query)]

    async def state(self, incident_id: UUID, as_of: datetime | None = None) -> Incident:
        async with self.engine.connect() as conn:
            state = fold(await self._events_of(conn, incident_id, as_of))
        if state is None:
            when = f" as of {as_of.isoformat()}" if as_of else ""
            raise UnknownIncident(f"no incident {incident_id}{when}")
        return state

    async def report(self, event: IncidentReported, now: datetime) -> Incident:
        check_awareness(event.aware_at, now)
        await self.check_registered(event.model_id)
        async with self.engine.connect() as conn:
            if await self._events_of(conn, event.incident_id, None):
                raise DomainError(f"incident {event.incident_id} exists already")
        await self._publish_and_wait([event])
        return await self.state(event.incident_id)

    async def execute(self, incident_id: UUID, command: Command, now: datetime) -> Incident:
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:id))"), {"id": str(incident_id)})
            state = fold(await self._events_of(conn, incident_id, None))
            if state is None:
                raise UnknownIncident(f"no incident {incident_id}")
            await self._publish_and_wait(decide(state, command, now))
        if isinstance(command, Triage) and command.harm in NON_SERIOUS:
            await self._check_trend(state.model_id, now)
        return await self.state(incident_id)

    async def _check_trend(self, model_id: str, now: datetime) -> None:
        """MDR Art. 88: non-serious incidents of this model, week by week, against its baseline."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(incidents.c.aware_at)
                .where(incidents.c.model_id == model_id)
                .where(incidents.c.harm.in_(NON_SERIOUS))
                .where(incidents.c.status.not_in(["candidate", "reported"]))
            )
            moments = [r.aware_at for r in rows]
        await self._publish(trend_events(model_id, moments, now))

    async def viewed(self, incident_id: UUID, by: str, role: str, as_of: datetime | None, now: datetime) -> None:
        """Access audit: the read is recorded like any event (not waited for)."""
        event = IncidentViewed(
            event_id=uuid4(),
            occurred_at=now,
            incident_id=incident_id,
            by=by,
            role=role,
            as_of=as_of,
        )
        await self._publish([event])

    async def list(self, status: str | None = None) -> list[InboxEntry]:
        """Incidents, the most urgent first."""
        query = select(incidents).order_by(incidents.c.next_due_at.nulls_last(), incidents.c.aware_at)
        if status:
            query = query.where(incidents.c.status == status)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query)
            return [InboxEntry.model_validate({k: v for k, v in r._mapping.items() if k != "state"}) for r in rows]

    async def report_for_regulator(
        self, incident_id: UUID, format: str, report_type: ReportType, by: str, role: str, now: datetime
    ) -> MirReport | Fda3500aReport:
        """The incident's EU MIR or FDA 3500A-aligned report with its model card; preparing it is a
        read, recorded like any other."""
        state = await self.state(incident_id)
        await self.viewed(incident_id, by, role, None, now)
        card = await self.model_card(state.model_id, state.model_version)
        return REPORT_FORMATS[format](state, card, report_type, by, now)

    async def model_card(self, model_id: str, version: str) -> ModelCard:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(events.c.body)
                .where(events.c.model_id == model_id)
                .where(events.c.event_type.in_(["ModelRegistered", "ModelVersionReleased"]))
                .order_by(events.c.seq)
            )
            registry = [parse(json.loads(body)) for (body,) in rows]
        return model_card(model_id, version, registry)
