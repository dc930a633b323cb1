"""Bearer tokens with roles; the token may also name the person, for the audit trail."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vigil_runtime.settings import Role

bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class Caller:
    role: str
    person: str  # named in the audit trail


def require(*roles: Role) -> Callable[..., Caller]:
    """A dependency that admits tokens whose role is one of `roles` (admin is always admitted)."""

    def check(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
        tokens = request.app.state.settings.api_tokens
        if credentials is None or credentials.credentials not in tokens:
            raise HTTPException(401, "missing or unknown bearer token", headers={"WWW-Authenticate": "Bearer"})
        token = credentials.credentials
        role, _, person = tokens[token].partition(":")
        if role != "admin" and role not in roles:
            raise HTTPException(403, f"role {role!r} may not do this; needs one of {', '.join(roles)}")
        return Caller(role, person or f"token-{hashlib.sha256(token.encode()).hexdigest()[:8]}")

    return check
