"""Bearer tokens and Sentry's scopes for ``/api/0/``.

Two kinds of token: those of ``[api] tokens`` in the config (read-only: ``org:read``,
``project:read``, ``event:read``; compared in constant time) and those made with ``minisentry
tokens create`` (stored as their SHA-256 only, looked up by that hash, with the scopes given at
creation). A route names the scope it needs; a stronger scope of the same family satisfies it
(``event:admin`` ⊇ ``event:write`` ⊇ ``event:read``), and ``project:write`` may change issues
as in Sentry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import anyio

from .errors import AuthForbidden, AuthMissing
from .httpserver import Request
from .backends.sqlite_tokens import token_is_stale

__all__ = ["SCOPES", "CONFIG_TOKEN_SCOPES", "Principal", "ApiAuth", "check_bearer", "bearer_token",
           "hash_token", "new_token", "parse_scopes"]

#: Sentry's scope names a stored token may carry.
SCOPES = ("org:read", "org:write", "org:admin", "project:read", "project:write", "project:admin",
          "project:releases", "team:read", "team:write", "team:admin", "member:read", "member:write",
          "member:admin", "event:read", "event:write", "event:admin")
#: What a token of ``[api] tokens`` may do: read, never write.
CONFIG_TOKEN_SCOPES = ("org:read", "project:read", "event:read")
#: Scope a route needs -> every scope that grants it.
_GRANTED_BY = {
    "org:read": ("org:read", "org:write", "org:admin"),
    "project:read": ("project:read", "project:write", "project:admin"),
    "event:read": ("event:read", "event:write", "event:admin"),
    "event:write": ("event:write", "event:admin", "project:write", "project:admin"),
}
_TOKEN_PREFIX = "msy_"
_MAX_TOKEN = 200


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made an API request: the token's name (``config`` for ``[api] tokens``) and its scopes."""

    name: str
    scopes: tuple[str, ...]

    def require(self, scope: str) -> None:
        """Raise AuthForbidden (403) naming ``scope`` unless this token has it (or a stronger one)."""
        granted_by = _GRANTED_BY.get(scope, (scope,))
        if not any(held in granted_by for held in self.scopes):
            others = [name for name in granted_by if name != scope]
            also = f" (or {', '.join(others)})" if others else ""
            raise AuthForbidden(f"this token lacks the scope {scope}{also}")


def hash_token(token: str) -> str:
    """The SHA-256 (hex) of a token: what the store keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A new random token (256 bits, URL-safe) with a recognisable prefix."""
    return _TOKEN_PREFIX + secrets.token_urlsafe(32)


def parse_scopes(text: str) -> list[str]:
    """Parse ``project:read,event:write`` (commas or spaces) into known scope names, deduplicated.

    Raises ValueError naming an unknown scope, or if there is none."""
    scopes = list(dict.fromkeys(part for part in text.replace(",", " ").split() if part))
    for scope in scopes:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r} (known: {', '.join(SCOPES)})")
    if not scopes:
        raise ValueError("give at least one scope")
    return scopes


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer <token>``. Raises AuthMissing (401) without one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthMissing("authentication credentials were not provided")
    return token.strip()


def check_bearer(request: Request, tokens: list[bytes]) -> None:
    """Check the bearer token against ``tokens`` (config tokens) in constant time.

    Raises AuthMissing (401) without a token, AuthForbidden (403) for another one."""
    if not _is_config_token(bearer_token(request), tokens):
        raise AuthForbidden("invalid token")


def _is_config_token(token: str, tokens: list[bytes]) -> bool:
    given = token.encode()
    # Every token is compared (no early exit), so the time taken does not say which one was close.
    return bool([known for known in tokens if hmac.compare_digest(given, known)])


class ApiAuth:
    """Finds the Principal of a request: a config token, or a stored one (store calls in a worker thread)."""

    def __init__(self, config_tokens: list[str], store: Any = None, reader: Any = None) -> None:
        self.config_tokens = [token.encode() for token in config_tokens]
        #: The writable store holding ``api_tokens`` (None, or one without it: config tokens only).
        self.store = store if hasattr(store, "find_api_token") else None
        #: Where tokens are looked up: the read-only store when there is one, so an API request
        #: does not wait for the lock the store stage writes events under; ``last_used`` is written
        #: on the writable store, at most once a minute per token.
        self.reader = reader if hasattr(reader, "find_api_token") else self.store

    async def authenticate(self, request: Request) -> Principal:
        """Return who is calling. Raises AuthMissing (401), AuthForbidden (403 for an unknown or
        revoked token), StorageError."""
        token = bearer_token(request)
        if _is_config_token(token, self.config_tokens):
            return Principal("config", CONFIG_TOKEN_SCOPES)
        if self.store is not None and len(token) <= _MAX_TOKEN:
            found = await anyio.to_thread.run_sync(self.reader.find_api_token, hash_token(token))
            if found is not None:
                if token_is_stale(found):
                    await anyio.to_thread.run_sync(self.store.touch_api_token, found["id"])
                return Principal(found["name"], tuple(found["scopes"]))
        raise AuthForbidden("invalid token")
