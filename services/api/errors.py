"""Domain errors become HTTP answers in one place (the most specific class wins)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.event_service import NotYetRecorded
from services.guidelines import UnknownGuideline
from services.incidents import UnknownIncident
from services.models import UnknownModel
from vigil.drift import DriftInputError
from vigil.incidents import DomainError, InvalidInput
from vigil.policy import PolicyError

ERROR_STATUS: dict[type[Exception], int] = {
    UnknownIncident: 404,
    UnknownModel: 404,
    UnknownGuideline: 404,
    InvalidInput: 422,
    DomainError: 409,  # a transition the incident's state does not allow
    NotYetRecorded: 503,
    DriftInputError: 422,
    PolicyError: 422,
}


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors become HTTP answers in one place (the most specific class wins)."""

    async def answer(_: Request, error: Exception) -> JSONResponse:
        status = next(code for cls, code in ERROR_STATUS.items() if isinstance(error, cls))
        return JSONResponse({"detail": str(error)}, status_code=status)

    for cls in ERROR_STATUS:
        app.add_exception_handler(cls, answer)
