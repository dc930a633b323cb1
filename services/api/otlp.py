"""OTLP/HTTP trace ingest (services/otlp.py): GenAI spans in, InferenceMade events out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from services import otlp
from services.api.auth import Caller, require
from services.publish import publish
from vigil.validation import dead_letter

routes = APIRouter(tags=["ingest"])


class PartialSuccess(BaseModel):
    rejectedSpans: str = Field(description="how many spans were refused (an int64, as OTLP/JSON writes it)")
    errorMessage: str = Field(description="each refused span's reason")


class TracesAnswer(BaseModel):
    """OTLP's ExportTraceServiceResponse as JSON (the protobuf answer carries the same fields)."""

    partialSuccess: PartialSuccess | None = Field(None, description="absent when every span was taken")


log = structlog.get_logger("api")
SOURCE = "otlp:/v1/traces"  # where a refused span's dead letter says it came from


@routes.post(
    "/v1/traces",
    summary="OTLP/HTTP traces: OpenTelemetry GenAI spans become InferenceMade events",
    description=f"An ExportTraceServiceRequest as protobuf (application/x-protobuf) or JSON (application/json), "
    f"optionally gzip. GenAI semantic conventions {otlp.SEMCONV} plus vigil.* attributes (README, 'OpenTelemetry "
    "GenAI spans in'). Spans that are not GenAI spans are ignored; GenAI spans that cannot become a valid event are "
    "refused in the partial success, with the reason, and dead-lettered.",
    openapi_extra={"requestBody": {"required": True, "content": {"application/x-protobuf": {},
                                                                 "application/json": {}}}},
    responses={200: {"model": TracesAnswer, "content": {"application/x-protobuf": {}}},
               400: {"description": "not an OTLP request"}, 413: {"description": "too large"}},
)  # fmt: skip
async def traces(request: Request, _: Annotated[Caller, Depends(require("emitter"))]) -> Response:
    raw = await request.body()
    if len(raw) > otlp.MAX_BODY_BYTES:
        raise HTTPException(413, f"request body of {len(raw)} bytes exceeds {otlp.MAX_BODY_BYTES} bytes")
    content_type = request.headers.get("content-type", "")
    try:
        found = otlp.decode(raw, content_type, request.headers.get("content-encoding", ""))
    except otlp.BadRequest as error:
        raise HTTPException(400, str(error)) from None
    now = datetime.now(UTC)
    events, refused = otlp.inferences(found, now)
    letters = [dead_letter(r.reason, SOURCE, 0, r.position, r.raw, now) for r in refused]
    await publish(request.app.state.producer, request.app.state.settings, events, letters)
    for r in refused:
        log.info("api.otlp_span_refused", reason_kind=r.reason.kind, path=r.reason.path)
    as_json = content_type.split(";")[0].strip().lower() == "application/json"
    return Response(otlp.response(refused, as_json), media_type="application/json" if as_json
                    else "application/x-protobuf")  # fmt: skip
