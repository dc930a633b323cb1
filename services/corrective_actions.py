"""Corrective-action commands and queries over the event store. The API and the CLI both use this.

Each command checks what it names (a registered model, recorded incidents of that model, a started
action), publishes its event through Kafka like every other and waits until the recorder has
stored it, so the caller reads its own write.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, Field, ValidationError

from services.event_service import EventService
from services.store import reads
from vigil.corrective_actions import ACTION_EVENTS, ActionEvent, CorrectiveAction, existing, fold_actions
from vigil.events import (
    CorrectiveActionChecked,
    CorrectiveActionStarted,
    CorrectiveKind,
    CountryCode,
    Event,
    FieldSafetyNoticeIssued,
    LongText,
    Text,
)
from vigil.incidents import InvalidInput, fold

NAMESPACE = uuid.UUID("0f3b8e6a-2c41-4d7e-9a15-6b2e8c4d1f70")
E = TypeVar("E", bound=Event)


class NewAction(BaseModel):
    action_id: UUID | None = Field(None, description="your own id: a retried request with it is recorded once")
    kind: CorrectiveKind
    title: Text
    description: LongText
    model_id: Text
    model_versions: list[Text] = Field([], max_length=50)
    deployments: list[Text] = Field([], max_length=200)
    incident_ids: list[UUID] = Field([], max_length=200)


class Notice(BaseModel):
    reference: Text
    countries: list[CountryCode] = Field([], max_length=60)
    summary: LongText


class Check(BaseModel):
    effective: bool
    evidence: LongText


def _event(cls: type[E], by: str, role: str, now: datetime, **fields: Any) -> E:
    try:
        return cls.model_validate({"event_id": uuid.uuid4(), "occurred_at": now, "by": by, "role": role} | fields)
    except ValidationError as error:
        raise InvalidInput("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())) from None


class CorrectiveActionService(EventService):
    async def actions(self, model_id: str | None = None, as_of: datetime | None = None) -> dict[UUID, CorrectiveAction]:
        async with self.engine.connect() as conn:
            return fold_actions(await reads.of_type(conn, *ACTION_EVENTS, model_id=model_id, recorded_by=as_of))

    async def action(self, action_id: UUID) -> CorrectiveAction:
        return existing(await self.actions(), action_id)

    async def start(self, body: NewAction, by: str, role: str, now: datetime) -> CorrectiveAction:
        await self.check_registered(body.model_id)
        async with self.engine.connect() as conn:
            for incident_id in body.incident_ids:
                state = fold(await reads.incident_events(conn, incident_id, None))
                if state is None:
                    raise InvalidInput(f"incident_ids: no incident {incident_id}")
                if state.model_id != body.model_id:
                    raise InvalidInput(f"incident_ids: incident {incident_id} concerns {state.model_id}, "
                                       f"not {body.model_id}")  # fmt: skip
        action_id = body.action_id or uuid.uuid4()
        event = _event(CorrectiveActionStarted, by, role, now, action_id=action_id,
                       **body.model_dump(exclude={"action_id"}))  # fmt: skip
        # Named by the action: the same request sent again is the same event, recorded once.
        return await self._record(event.model_copy(update={"event_id": uuid.uuid5(NAMESPACE, f"{action_id}/started")}))

    async def notice(self, action_id: UUID, body: Notice, by: str, role: str, now: datetime) -> CorrectiveAction:
        model_id = (await self.action(action_id)).started.model_id
        return await self._record(_event(FieldSafetyNoticeIssued, by, role, now, action_id=action_id,
                                         model_id=model_id, **body.model_dump()))  # fmt: skip

    async def check(self, action_id: UUID, body: Check, by: str, role: str, now: datetime) -> CorrectiveAction:
        model_id = (await self.action(action_id)).started.model_id
        return await self._record(_event(CorrectiveActionChecked, by, role, now, action_id=action_id,
                                         model_id=model_id, **body.model_dump()))  # fmt: skip

    async def _record(self, event: ActionEvent) -> CorrectiveAction:
        await self._publish_and_wait([event])
        return await self.action(event.action_id)
