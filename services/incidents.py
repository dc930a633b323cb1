"""Incident commands and queries over the event store. The API and the CLI both use this.

A command runs under a per-incident advisory lock: fold the incident's stored events, `decide`,
publish the new events through Kafka like every other event, and wait until the recorder has
stored them, so the caller reads its own write. Event ids are deterministic (vigil.incidents), so
a retried command is recorded once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID, uuid4

from services.event_service import EventService
from services.store import reads
from services.store.reads import InboxEntry
from vigil.corrective_actions import ACTION_EVENTS, fold_actions, for_incident
from vigil.events import (
    IncidentReported,
    IncidentViewed,
    ModelRegistered,
    ModelVersionReleased,
)
from vigil.incidents import Command, DomainError, Incident, Triage, check_awareness, decide, fold
from vigil.reports.builders import REPORT_FORMATS, Fda3500aReport, MirReport, ReportKind
from vigil.reports.models import ModelCard, model_card
from vigil.trends import NON_SERIOUS, trend_events


class UnknownIncident(DomainError):
    pass


class IncidentService(EventService):
    async def state(self, incident_id: UUID, as_of: datetime | None = None) -> Incident:
        async with self.engine.connect() as conn:
            state = fold(await reads.incident_events(conn, incident_id, as_of))
        if state is None:
            when = f" as of {as_of.isoformat()}" if as_of else ""
            raise UnknownIncident(f"no incident {incident_id}{when}")
        return state

    async def report(self, event: IncidentReported, now: datetime) -> Incident:
        check_awareness(event.aware_at, now)
        await self.check_registered(event.model_id)
        async with self.engine.connect() as conn:
            if await reads.incident_events(conn, event.incident_id, None):
                raise DomainError(f"incident {event.incident_id} exists already")
        await self._publish_and_wait([event])
        return await self.state(event.incident_id)

    async def execute(self, incident_id: UUID, command: Command, now: datetime) -> Incident:
        async with self.engine.begin() as conn:
            await reads.hold_incident(conn, incident_id)
            state = fold(await reads.incident_events(conn, incident_id, None))
            if state is None:
                raise UnknownIncident(f"no incident {incident_id}")
            await self._publish_and_wait(decide(state, command, now))
        if isinstance(command, Triage) and command.harm in NON_SERIOUS:
            await self._check_trend(state.model_id, now)
        return await self.state(incident_id)

    async def _check_trend(self, model_id: str, now: datetime) -> None:
        """MDR Art. 88: non-serious incidents of this model, week by week, against its baseline."""
        async with self.engine.connect() as conn:
            moments = await reads.awareness_of(conn, model_id, NON_SERIOUS, excluding=["candidate", "reported"])
        await self._publish(trend_events(model_id, moments, now))

    async def viewed(
        self,
        incident_id: UUID,
        by: str,
        role: str,
        as_of: datetime | None,
        now: datetime,
        document: Literal["mir", "fda-3500a"] | None = None,
    ) -> None:
        """Access audit: the read (and the report prepared, if one was) is recorded like any event,
        not waited for."""
        event = IncidentViewed(
            event_id=uuid4(), occurred_at=now, incident_id=incident_id, by=by, role=role, as_of=as_of, document=document
        )
        await self._publish([event])

    async def list(
        self, status: str | None = None, model_id: str | None = None, regime: str | None = None
    ) -> list[InboxEntry]:
        """Incidents, the most urgent first; of one status, model or reporting regime."""
        async with self.engine.connect() as conn:
            return await reads.inbox(conn, status, model_id, regime)

    async def report_for_regulator(
        self, incident_id: UUID, format: str, report_type: ReportKind, by: str, role: str, now: datetime
    ) -> MirReport | Fda3500aReport:
        """The incident's EU MIR or FDA 3500A-aligned report with its model card; preparing it is a
        read, recorded like any other."""
        state = await self.state(incident_id)
        await self.viewed(incident_id, by, role, None, now, "mir" if format == "mir" else "fda-3500a")
        card = await self.model_card(state.model_id, state.model_version)
        async with self.engine.connect() as conn:
            events = await reads.of_type(conn, *ACTION_EVENTS, model_id=state.model_id)
        actions = for_incident(fold_actions(events).values(), incident_id)
        return REPORT_FORMATS[format](state, card, report_type, by, now, actions)

    async def model_card(self, model_id: str, version: str) -> ModelCard:
        async with self.engine.connect() as conn:
            registry = await reads.of_type(conn, ModelRegistered, ModelVersionReleased, model_id=model_id)
        return model_card(model_id, version, registry)
