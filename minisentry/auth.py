"""Extract a Sentry public key from a request: header, query string or the envelope's DSN.

SDKs authenticate with ``X-Sentry-Auth: Sentry sentry_key=<key>, sentry_version=7, ...`` (or the same
in ``Authorization``), browsers without custom headers with ``?sentry_key=<key>``, and tunnels with the
envelope header ``dsn``. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from .errors import AuthForbidden

__all__ = ["key_from_headers", "key_from_query", "key_from_dsn", "parse_auth_header", "check_key_format"]

_KEY_RE = re.compile(r"^[0-9a-f]{32}$")


def parse_auth_header(value: str) -> dict[str, str]:
    """Parse ``Sentry k=v, k=v`` into a dict (the ``Sentry`` prefix is optional)."""
    value = value.strip()
    if value[:7].lower() == "sentry ":
        value = value[7:]
    result = {}
    for part in value.split(","):
        name, sep, val = part.partition("=")
        if sep:
            result[name.strip().lower()] = val.strip()
    return result


def key_from_headers(headers: dict[str, str]) -> str | None:
    """Return ``sentry_key`` from X-Sentry-Auth or a ``Sentry``-scheme Authorization header."""
    value = headers.get("x-sentry-auth")
    if value is None:
        value = headers.get("authorization")
        if value is None or not value.lstrip().lower().startswith("sentry "):
            return None
    return parse_auth_header(value).get("sentry_key")


def key_from_query(query: str) -> str | None:
    """Return the ``sentry_key`` query parameter, if any."""
    if "sentry_key" not in query:
        return None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "sentry_key":
            return value
    return None


def key_from_dsn(dsn: object) -> str | None:
    """Return the public key (the user part) of a DSN string, or None if it has none."""
    if not isinstance(dsn, str):
        return None
    try:
        username = urlsplit(dsn).username
    except ValueError:
        return None
    return username or None


def check_key_format(key: str) -> str:
    """Return the key lowercased if it is 32 hex characters. Raises AuthForbidden otherwise."""
    lowered = key.strip().lower()
    if not _KEY_RE.match(lowered):
        raise AuthForbidden("invalid public key")
    return lowered
