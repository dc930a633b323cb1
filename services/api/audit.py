"""The audit trail for auditors, as FHIR R4 AuditEvents (IHE BALP)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, Field

from services.api.auth import Caller, require
from services.audit import AuditService
from services.audit_fhir import bundle

routes = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditBundle(BaseModel):
    """A FHIR R4 Bundle (type collection) of AuditEvents, served as application/fhir+json."""

    resourceType: str = "Bundle"
    type: str = "collection"
    entry: list[dict[str, Any]] = Field(default_factory=list, description="{fullUrl, resource: AuditEvent}")


@routes.get(
    "/fhir",
    response_model=None,
    summary="Accesses to incident data and incident changes since a moment, as a FHIR Bundle of AuditEvents",
    responses={
        200: {
            "model": AuditBundle,
            "content": {"application/fhir+json": {}},
            "description": "a Bundle (type collection)",
        }
    },
)
async def audit_bundle(
    request: Request,
    _: Annotated[Caller, Depends(require("auditor", "safety_officer"))],
    since: Annotated[AwareDatetime, Query(description="recorded since, e.g. 2026-10-01T00:00:00Z")],
) -> Response:
    audit: AuditService = request.app.state.audit
    found = bundle(await audit.trail(since))
    return Response(found.model_dump_json(exclude_none=True), media_type="application/fhir+json")
