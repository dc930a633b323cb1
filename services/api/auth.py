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

    def may(self, *roles: str) -> bool:
        """Whether this caller holds one of `roles` (admin holds every role)."""
        return self.role == "admin" or self.role in roles


def caller_of(tokens: dict[str, str], token: str) -> Caller | None:
    """Who a token is (its role, and the person the audit trail names), or None for an unknown one."""
    if token not in tokens:
        return None
    role, _, person = tokens[token].partition(":")
    return Caller(role, person or f"token-{hashlib.sha256(token.encode()).hexdigest()[:8]}")


def require(*roles: Role) -> Callable[..., Caller]:
    """A dependency that admits tokens whose role is one of `roles` (admin is always admitted)."""

    def check(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
        caller = caller_of(request.app.state.settings.api_tokens, credentials.credentials) if credentials else None
        if caller is None:
            raise HTTPException(401, "missing or unknown bearer token", headers={"WWW-Authenticate": "Bearer"})
        if not caller.may(*roles):
            raise HTTPException(403, f"role {caller.role!r} may not do this; needs one of {', '.join(roles)}")
        return caller

    return check
