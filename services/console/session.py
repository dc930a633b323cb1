"""Console sessions: a signed, expiring cookie that names the caller, and a CSRF token per session.

The cookie holds no token: only the role and the person a token stood for at sign-in, the
session's CSRF token and when it was issued, signed with the console secret (itsdangerous). It is
HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it) and Secure when the
console is served over HTTPS. Every form carries the session's CSRF token and every POST checks it,
so a page elsewhere cannot make a signed-in officer's browser triage an incident.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from services.api.auth import Caller

COOKIE = "vigil_console"
SALT = "vigil-console-session"
# People sign in; emitters are model services, which have nothing to read or decide here.
PEOPLE_ROLES = ("safety_officer", "auditor", "admin")


@dataclass(frozen=True)
class Session:
    caller: Caller
    csrf: str


class Sessions:
    """Issues and reads session cookies for one API process (one secret, one lifetime)."""

    def __init__(self, secret: str | None, minutes: int) -> None:
        # Without a configured secret, sessions last as long as this process does.
        self.serializer = URLSafeTimedSerializer(secret or secrets.token_urlsafe(32), salt=SALT)
        self.seconds = minutes * 60

    def open(self, response: Response, request: Request, caller: Caller) -> None:
        value = self.serializer.dumps([caller.role, caller.person, secrets.token_urlsafe(24)])
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.seconds,
            path="/console",
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="strict",
        )

    def read(self, request: Request) -> Session | None:
        """The request's session, or None when it has none, a forged one or an expired one."""
        value = request.cookies.get(COOKIE)
        if not value:
            return None
        try:
            role, person, csrf = self.serializer.loads(value, max_age=self.seconds)
        except (BadSignature, ValueError, TypeError):
            return None
        return Session(Caller(str(role), str(person)), str(csrf))

    @staticmethod
    def close(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")


def csrf_matches(session: Session, sent: object) -> bool:
    return isinstance(sent, str) and hmac.compare_digest(session.csrf.encode(), sent.encode())
