"""The upstream side of stacked relays: project configs for trusted downstream relays.

::

    POST /api/0/relays/projectconfigs/   {"publicKeys": ["<key>", ...]}
      → 200 {"configs": {"<key>": {"projectId": 1, "disabled": false,
                                   "publicKeys": [{"publicKey": "<key>", "isEnabled": true}],
                                   "config": {}} | null}}

Shaped like Sentry's endpoint of the same name (unknown keys map to ``null``). Only relays listed in
``[[relays]]`` may ask, with a valid signature (see ``relayauth.py``): unsigned or badly signed
requests get 401, unknown relays 403, each with an ``X-Sentry-Error`` saying why.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import BadRequest, MethodNotAllowed, NotFound
from .httpserver import Request, Response
from .relayauth import RelayVerifier
from .upstream import MAX_KEYS_PER_REQUEST

__all__ = ["RelayApi", "PROJECT_CONFIGS_PATH"]

PROJECT_CONFIGS_PATH = "/api/0/relays/projectconfigs/"


class RelayApi:
    """Answers ``/api/0/relays/`` from the relay's key table (``ProjectKeys``). Never blocks."""

    def __init__(self, keys: Any, verifier: RelayVerifier) -> None:
        self.keys = keys
        self.verifier = verifier

    async def handle(self, request: Request) -> Response:
        """Answer one request. Raises RelayAuthFailed (401), AuthForbidden (403), BadRequest, NotFound."""
        if request.path.rstrip("/") != PROJECT_CONFIGS_PATH.rstrip("/"):
            raise NotFound(f"no route for {request.path}")
        if request.method != "POST":
            raise MethodNotAllowed(f"{request.method} is not allowed here")
        self.verifier.verify(request.headers, request.body)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body is not JSON: {exc}") from exc
        keys = body.get("publicKeys") if isinstance(body, dict) else None
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise BadRequest("publicKeys must be a list of strings")
        if len(keys) > MAX_KEYS_PER_REQUEST:
            raise BadRequest(f"at most {MAX_KEYS_PER_REQUEST} publicKeys per request")
        configs = {key: self._config_of(key) for key in keys}
        return Response(200, orjson.dumps({"configs": configs}))

    def _config_of(self, key: str) -> dict[str, Any] | None:
        entry = self.keys.entry(key.strip().lower())
        if entry is None:
            return None
        project_id, active = entry
        return {"projectId": project_id, "disabled": False,
                "publicKeys": [{"publicKey": key, "isEnabled": active}], "config": {}}
