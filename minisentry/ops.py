"""The HTTP endpoints of a process that runs no relay (``serve --role process --port P``): probes and metrics.

Worker processes have no front door, but their supervisors still need a liveness and readiness
probe and Prometheus needs their channel statistics. This handler serves exactly those, with the
same paths and shapes as the relay, and refuses everything else with a 404 that says where events
go instead.
"""

from __future__ import annotations

from typing import Callable

import orjson

from .errors import MethodNotAllowed, NotFound, RequestError
from .httpserver import Request, Response
from .metrics import Health

__all__ = ["OpsHandler"]

_BODY_LIMIT = 1024


class OpsHandler:
    """The httpserver Handler of a relay-less process. Never blocks; raises RequestError for refusals."""

    def __init__(self, roles: str, health: Callable[[], Health], metrics: Callable[[], str]) -> None:
        self.roles = roles
        self.health = health
        self.metrics = metrics

    def body_limit(self, request: Request) -> int:
        """Probes carry no body: anything larger than a token one is refused."""
        return _BODY_LIMIT

    async def handle(self, request: Request) -> Response:
        """Answer the probes and /metrics; 404 for the rest."""
        if request.path in ("/api/relay/healthcheck/live/", "/api/relay/healthcheck/ready/", "/metrics"):
            if request.method != "GET":
                raise MethodNotAllowed(f"{request.method} is not allowed here")
        if request.path == "/api/relay/healthcheck/live/":
            return Response(200, b'{"is_healthy":true}')
        if request.path == "/api/relay/healthcheck/ready/":
            health = self.health()
            body = orjson.dumps({"is_healthy": health.ready, "reasons": list(health.reasons)})
            return Response(200 if health.ready else 503, body)
        if request.path == "/metrics":
            return Response(200, self.metrics().encode(), content_type="text/plain; version=0.0.4")
        raise NotFound(f"no route for {request.path}: this process runs {self.roles}, events go to a relay")

    def error(self, exc: RequestError, request: Request | None) -> Response:
        """Render a refusal as ``{"detail": ...}``."""
        return Response(exc.status, orjson.dumps({"detail": exc.detail}),
                        [("X-Sentry-Error", exc.detail.replace("\r", " ").replace("\n", " ")[:200])])
