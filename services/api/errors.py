"""Errors become HTTP answers in one place: domain errors by class (the most specific wins), an
unreachable database or broker as 503 with Retry-After, and anything else as a 500 that says
where to look. No answer is a bare 500."""

from __future__ import annotations

import uuid

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from services.console.views import error_page
from services.event_service import NotYetRecorded
from services.guidelines import UnknownGuideline
from services.incidents import UnknownIncident
from vigil.corrective_actions import UnknownAction
from vigil.drift import DriftInputError
from vigil.export import QuarterError
from vigil.incidents import DomainError, InvalidInput
from vigil.policy import PolicyError
from vigil.registry import UnknownModel
from vigil_runtime.outages import Unavailable, is_outage

log = structlog.get_logger("api")
RETRY_AFTER_SECONDS = 5


ERROR_STATUS: dict[type[Exception], int] = {
    UnknownIncident: 404,
    UnknownModel: 404,
    UnknownGuideline: 404,
    UnknownAction: 404,
    InvalidInput: 422,
    DomainError: 409,  # a transition the incident's state does not allow
    NotYetRecorded: 503,
    DriftInputError: 422,
    PolicyError: 422,
    QuarterError: 422,
}


def install_error_handlers(app: FastAPI) -> None:
    def respond(request: Request, status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
        if request.url.path.startswith("/console"):  # people read these: a page in the console's frame
            session = request.app.state.console_sessions.read(request)
            return error_page(request, status, detail, session)
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    async def answer(request: Request, error: Exception) -> Response:
        status = next(code for cls, code in ERROR_STATUS.items() if isinstance(error, cls))
        return respond(request, status, str(error))

    async def unexpected(request: Request, error: Exception) -> Response:
        if isinstance(error, Unavailable) or is_outage(error):
            log.warning("api.dependency_unavailable", path=request.url.path, error=type(error).__name__)
            detail = str(error) if isinstance(error, Unavailable) else "the event store cannot be reached; retry"
            return respond(request, 503, detail, {"Retry-After": str(RETRY_AFTER_SECONDS)})
        reference = uuid.uuid4().hex[:12]
        log.exception("api.unexpected_error", path=request.url.path, reference=reference)
        return respond(request, 500, f"internal error {reference}: the API log has it under this reference")

    for cls in ERROR_STATUS:
        app.add_exception_handler(cls, answer)
    app.add_exception_handler(Exception, unexpected)
