"""Corrective-action routes: start a field safety corrective action or CAPA, record its field safety
notice and its effectiveness check, read them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request

from services.api.auth import Caller, require
from services.corrective_actions import Check, CorrectiveActionService, NewAction, Notice
from vigil.corrective_actions import CorrectiveAction

routes = APIRouter(prefix="/v1/corrective-actions", tags=["corrective actions"])
Officer = Annotated[Caller, Depends(require("safety_officer"))]
Reader = Annotated[Caller, Depends(require("safety_officer", "auditor"))]


def service(request: Request) -> CorrectiveActionService:
    return request.app.state.corrective_actions


Service = Annotated[CorrectiveActionService, Depends(service)]
UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "unknown action"}}


@routes.post("", status_code=201, response_model=CorrectiveAction, summary="Start a corrective action or CAPA",
             responses={422: {"description": "unknown model, or an incident not there or not of it"}})  # fmt: skip
async def start(body: NewAction, caller: Officer, actions: Service) -> CorrectiveAction:
    return await actions.start(body, caller.person, caller.role, datetime.now(UTC))


@routes.post("/{action_id}/notices", response_model=CorrectiveAction, summary="Record a field safety notice issued",
             responses=UNKNOWN)  # fmt: skip
async def notice(action_id: UUID, body: Notice, caller: Officer, actions: Service) -> CorrectiveAction:
    return await actions.notice(action_id, body, caller.person, caller.role, datetime.now(UTC))


@routes.post("/{action_id}/effectiveness", response_model=CorrectiveAction, summary="Record an effectiveness check",
             responses=UNKNOWN)  # fmt: skip
async def check(action_id: UUID, body: Check, caller: Officer, actions: Service) -> CorrectiveAction:
    return await actions.check(action_id, body, caller.person, caller.role, datetime.now(UTC))


@routes.get("", response_model=list[CorrectiveAction], summary="Corrective actions, of one model or incident")
async def list_actions(
    _: Reader, actions: Service, model_id: str | None = None, incident_id: UUID | None = None
) -> list[CorrectiveAction]:
    found = (await actions.actions(model_id)).values()
    return [a for a in found if incident_id is None or incident_id in a.started.incident_ids]


@routes.get("/{action_id}", response_model=CorrectiveAction, summary="A corrective action", responses=UNKNOWN)
async def read(action_id: UUID, _: Reader, actions: Service) -> CorrectiveAction:
    return await actions.action(action_id)
