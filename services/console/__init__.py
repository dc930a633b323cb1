"""The web console for people: clinical safety officers, auditors and governance committees.

Server-rendered pages under /console, served by the API process with the same tokens, roles and
services as the API (README, "The console"). Every asset ships in the package.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.console.pages import CsrfMismatch, Forbidden, SignInNeeded, routes
from services.console.session import Sessions
from services.console.views import HERE, SECURITY_HEADERS, error_page
from vigil_runtime.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    secret = settings.console_secret.get_secret_value() if settings.console_secret else None
    app.state.console_sessions = Sessions(secret, settings.console_session_minutes)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(routes)

    async def sign_in_first(request: Request, _: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            return error_page(request, 401, "your session has ended: sign in again, then repeat what you did")
        return RedirectResponse(f"/console/sign-in?next={quote(target)}", 303)

    async def forbidden(request: Request, error: Exception) -> Response:
        return error_page(request, 403, str(error), app.state.console_sessions.read(request))

    async def csrf_mismatch(request: Request, _: Exception) -> Response:
        message = "this form did not come from your console session (a missing or stale form token); reload the page"
        return error_page(request, 403, message, app.state.console_sessions.read(request))

    async def not_understood(request: Request, error: Exception) -> Response:
        """A malformed query or path (a date that is no date, an id that is no id): the API keeps
        FastAPI's JSON answer, the console says it in words on a page."""
        assert isinstance(error, RequestValidationError)
        if not request.url.path.startswith("/console"):
            return await request_validation_exception_handler(request, error)
        problems = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in error.errors())
        return error_page(request, 422, problems, app.state.console_sessions.read(request))

    app.add_exception_handler(RequestValidationError, not_understood)
    app.add_exception_handler(SignInNeeded, sign_in_first)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(CsrfMismatch, csrf_mismatch)

    @app.middleware("http")
    async def console_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/console"):
            response.headers.update(SECURITY_HEADERS)
        return response
