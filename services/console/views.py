"""Rendering the console's templates, its error pages and the headers every console answer carries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.console.session import Session

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# Everything the console loads comes from itself: no inline script or style, no other origin, no
# framing (clickjacking), no caching of pages that show incidents.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def left(due: datetime, now: datetime) -> str:
    """Time to a deadline in words, as the page's script keeps counting it: '2 d 4 h left', '3 h overdue'."""
    seconds = int((due - now).total_seconds())
    days, rest = divmod(abs(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    span = f"{days} d {hours} h" if days else f"{hours} h {rest // 60} min"
    return f"{span} left" if seconds >= 0 else f"{span} overdue"


def block_kind(block: object) -> str:
    """How a model card block is drawn: a paragraph, a bullet list or a table (services.rendering)."""
    return "text" if isinstance(block, str) else "list" if isinstance(block, list) else "table"


templates.env.filters["when"] = when
templates.env.globals.update(left=left, block_kind=block_kind)


def page(request: Request, name: str, session: Session | None, status: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"session": session, "now": datetime.now(UTC), **context}, status_code=status
    )


def error_page(request: Request, status: int, message: str, session: Session | None = None) -> HTMLResponse:
    """A refusal or failure in words, inside the console's frame (never a bare 500)."""
    titles = {401: "Sign-in needed", 403: "Not allowed", 404: "Not found", 409: "Refused", 422: "Not understood",
              503: "Unavailable"}  # fmt: skip
    return page(request, "error.html", session, status, title=titles.get(status, "Error"), message=message)
