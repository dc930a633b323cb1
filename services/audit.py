"""The access and incident audit trail: sign-ins recorded, and the audited events read back."""

from __future__ import annotations

from datetime import datetime
from uuid import uuid4

from services.audit_fhir import AUDITED
from services.event_service import EventService
from services.store import reads
from vigil.events import ConsoleSignedIn, Event


class AuditService(EventService):
    async def signed_in(self, by: str, role: str, now: datetime) -> None:
        """Recorded like any event, not waited for: a sign-in must not wait on the recorder."""
        await self._publish([ConsoleSignedIn(event_id=uuid4(), occurred_at=now, by=by, role=role)])

    async def trail(self, since: datetime, until: datetime | None = None) -> list[Event]:
        """Every audited event recorded in [since, until), in the order it was recorded."""
        async with self.engine.connect() as conn:
            found = await reads.of_type(conn, *AUDITED, recorded_since=since)
        return [e for e in found if until is None or e.occurred_at < until]
