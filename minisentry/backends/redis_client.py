"""The Redis connection shared by the Redis backends: building a client, redacting its URL, errors.

Every Redis call of a backend runs inside :func:`translated`, so callers only ever see
:class:`~minisentry.errors.BackendError` (never a redis-py exception), with the URL in the message
but never its password. Importing this module needs redis-py (the ``minisentry[redis]`` extra).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

import redis

from ..errors import BackendError

__all__ = ["redact_url", "make_client", "translated", "check_prefix"]


def redact_url(url: str) -> str:
    """Return ``url`` with its password (and any query string) replaced by ``***``. Never raises."""
    try:
        parts = urlsplit(str(url))
        userinfo, at, hostport = parts.netloc.rpartition("@")
        if at:
            user, colon, _ = userinfo.partition(":")
            # "redis://secret@host" puts the password where a user name would be: hide it as well.
            netloc = f"{user}:***@{hostport}" if colon else f"***@{hostport}"
        else:
            netloc = parts.netloc
        query = "***" if parts.query else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "<unparseable Redis URL>"


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a non-empty key prefix without whitespace or ':' at the ends."""
    if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix) or prefix.strip(":") != prefix:
        raise ValueError(f"prefix must be non-empty, without whitespace or ':' at either end, got {prefix!r}")
    return prefix


def make_client(client_or_url: Any, *, socket_timeout: float = 5.0, ping: bool = True) -> tuple[Any, str]:
    """Return ``(client, label)`` for a ``redis.Redis`` or a ``redis://`` / ``rediss://`` / ``unix://`` URL.

    ``label`` names the server in error messages (password redacted). With ``ping`` the connection
    is tried now (blocks one round trip) so a wrong URL fails at startup, not at the first event.
    Raises BackendError naming the URL when Redis cannot be reached or the URL is invalid.
    """
    if isinstance(client_or_url, str):
        label = redact_url(client_or_url)
        try:
            client = redis.Redis.from_url(client_or_url, socket_timeout=socket_timeout,
                                          socket_connect_timeout=socket_timeout)
        except ValueError as exc:
            raise BackendError(f"invalid Redis URL {label}: {exc}") from exc
    else:
        client = client_or_url
        kwargs = client.connection_pool.connection_kwargs
        label = f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
    if ping:
        with translated(label, "connect"):
            client.ping()
    return client, label


@contextmanager
def translated(label: str, what: str) -> Iterator[None]:
    """Turn redis-py errors raised inside the block into BackendError naming ``label`` and ``what``."""
    try:
        yield
    except redis.RedisError as exc:
        raise BackendError(f"Redis at {label}: {what} failed: {exc}") from exc
