"""Web UI sign-ins: random session tokens in a cookie, stored hashed server-side, and CSRF tokens.

The cookie ``minisentry_session`` holds 32 random bytes (URL-safe base64); the store keeps only
their SHA-256, with an expiry (``[web] session_max_age``). Each session's CSRF token is an HMAC of
its session token, so it needs no storage and is worthless for another session. The sign-in form,
used before any session exists, carries a random token that must equal the ``minisentry_login``
cookie (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import anyio

from ..errors import CsrfRejected
from ..httpserver import Request

__all__ = ["SESSION_COOKIE", "LOGIN_COOKIE", "Session", "Sessions", "cookies", "hash_token", "check_csrf"]

SESSION_COOKIE = "minisentry_session"
LOGIN_COOKIE = "minisentry_login"


def hash_token(token: str) -> str:
    """The SHA-256 (hex) of a session token: what the store keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def cookies(request: Request) -> dict[str, str]:
    """Parse the request's ``Cookie`` header into ``{name: value}`` (malformed pairs are skipped)."""
    result: dict[str, str] = {}
    for pair in request.headers.get("cookie", "").split(";"):
        name, sep, value = pair.strip().partition("=")
        if sep and name:
            result.setdefault(name, value)
    return result


def check_csrf(expected: str, form: dict[str, str]) -> None:
    """Raise CsrfRejected (403) unless the form's ``csrf_token`` equals ``expected`` (constant time)."""
    given = form.get("csrf_token", "")
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfRejected("missing or wrong CSRF token")


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in user's session as seen by one request."""

    token: str
    user_id: int
    email: str

    @property
    def csrf(self) -> str:
        """This session's CSRF token (an HMAC of the session token)."""
        return hmac.new(self.token.encode(), b"minisentry-csrf", hashlib.sha256).hexdigest()


class Sessions:
    """Creates, finds and ends sessions in the store; store calls run in worker threads."""

    def __init__(self, store: Any, *, max_age: float, max_sessions: int, secure: bool) -> None:
        self.store = store
        self.max_age = max_age
        self.max_sessions = max_sessions
        self.secure = secure

    def cookie(self, name: str, value: str, max_age: float | None) -> str:
        """A ``Set-Cookie`` value: HttpOnly, SameSite=Lax, Path=/, Secure when configured."""
        parts = [f"{name}={value}", "HttpOnly", "SameSite=Lax", "Path=/"]
        if max_age is not None:
            parts.append(f"Max-Age={int(max_age)}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)

    async def start(self, user_id: int) -> str:
        """Store a new session for ``user_id`` and return its ``Set-Cookie`` value. Raises StorageError."""
        token = secrets.token_urlsafe(32)
        await anyio.to_thread.run_sync(lambda: self.store.create_web_session(
            hash_token(token), user_id, time.time() + self.max_age, max_sessions=self.max_sessions))
        return self.cookie(SESSION_COOKIE, token, self.max_age)

    async def current(self, request: Request) -> Session | None:
        """The request's live session, or None (no cookie, unknown or expired). Raises StorageError."""
        token = cookies(request).get(SESSION_COOKIE, "")
        if not token or len(token) > 100:
            return None
        row = await anyio.to_thread.run_sync(self.store.web_session_user, hash_token(token))
        return Session(token, row["user_id"], row["email"]) if row is not None else None

    async def end(self, session: Session) -> str:
        """Forget ``session`` and return the ``Set-Cookie`` value that clears the cookie."""
        await anyio.to_thread.run_sync(self.store.delete_web_session, hash_token(session.token))
        return self.cookie(SESSION_COOKIE, "", 0)
