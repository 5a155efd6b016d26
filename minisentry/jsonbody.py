"""Reading a request body (or form field) that must be one JSON object."""

from __future__ import annotations

from typing import Any

import orjson

from .errors import BadRequest

__all__ = ["json_object"]


def json_object(data: bytes, what: str = "body", error: type[BadRequest] = BadRequest) -> dict[str, Any]:
    """Parse ``data`` as a JSON object. Never blocks.

    Raises ``error`` (BadRequest or a subclass, 400) saying ``what`` is not JSON or not an object.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise error(f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise error(f"{what} must be a JSON object")
    return value
