"""The relay stage: the HTTP front door where SDKs send envelopes and events.

Routes (trailing slash optional)::

    POST    /api/<project_id>/envelope/       Sentry envelopes (what every current SDK sends)
    POST    /api/<project_id>/store/          a single event as JSON (legacy SDKs)
    POST    /api/<project_id>/minidump/       a crash reporter's multipart upload (``minidump.py``);
                                              answered with the hyphenated event id as plain text
    GET/POST /api/<project_id>/cron/<monitor>/<key>/?status=...   a cron check-in over plain HTTP
    POST    /api/<project_id>/security/  (or /csp-report/)   browser CSP reports, key in ?sentry_key=
    OPTIONS /api/<project_id>/...             CORS preflight
    POST    /api/<project_id>/<name>/         a plugin's endpoint (``minisentry_register_endpoints``):
                                              the body becomes one item of the plugin's item type
    GET     /api/relay/healthcheck/live/      the process is up
    GET     /api/relay/healthcheck/ready/     the pipeline accepts events (503 with reasons if not)
    GET     /metrics                          channel statistics and counters (Prometheus text)
    GET/PUT /api/0/...                        the web API (see api.py)
    GET/POST /ui/..., /                       the web UI (see web/routes.py)
    GET/POST /api/0/organizations/<org>/chunk-upload/, POST .../artifactbundle/assemble/
                                              source-map uploads by sentry-cli (see uploadapi.py)

Per request: size limits (after decompression, while streaming), authentication, envelope parsing,
per-item size checks, quotas (``[[quotas]]``: items over quota are dropped as ``rate_limited``; an
envelope with nothing left gets 429 with ``Retry-After`` and ``X-Sentry-Rate-Limits``, limited or
fully blocked categories are announced on 200s too), then a hand-off to the ingest channel. The answer is 200 only once the
envelope is in the channel (or, with a ``[spool]``, committed to the on-disk spool, which takes
over whenever the channel is full and keeps order while it holds anything); otherwise, after
``stages.enqueue_timeout``, the answer is 429 with ``Retry-After``, and the items are counted as
``rate_limited`` (reason ``pipeline_full``, or ``spool_full`` when the spool is at its limit).

Stacked relays: requests carrying ``X-Sentry-Relay-Id`` must be signed by a relay of ``[[relays]]``
(401/403 otherwise, see ``relayauth.py``), and ``/api/0/relays/`` serves them project configs
(``relayapi.py``). On an edge relay (``[upstream]``) the keys come from the upstream
(``projectconfigs.py``) and the upstream's announced rate limits are enforced here as well
(``upstreamlimits.py``); the forwarder replaces the ingest stage (``forwarder.py``).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import parse_qsl
from typing import TYPE_CHECKING, Callable

import anyio
import orjson

from ..auth import check_key_format, key_from_dsn, key_from_headers, key_from_query
from ..channels import ChannelSender
from ..clientip import client_ip, parse_networks
from ..config import Config
from ..envelope import Envelope, Item
from ..errors import (AuthMissing, BackendError, BadRequest, MethodNotAllowed, NotFound, PayloadTooLarge, PipelineFull,
                      RateLimited, RequestError, SpoolFull)
from ..httpserver import Request, Response
from ..messages import EnvelopeMessage
from ..monitors import CheckInError, parse_check_in
from ..metrics import Health
from ..outcomes import Outcome, OutcomeAggregator, category_of_item
from ..projects import ProjectKeys
from ..security import csp_events
from ..quotas import (MemoryQuotaCounters, QuotaCounters, RateLimiter, RateLimitResult, envelope_quantities,
                      format_rate_limits, partition_items)
from ..relayapi import RelayApi
from ..relayauth import RELAY_ID_HEADER, SIGNATURE_HEADER, RelayVerifier
from ..upstreamlimits import UpstreamLimits
from ..spool import DiskSpool, encode_envelope_message
from ..jsonbody import json_object
from .relay_bodies import envelope_event_id, request_envelope
from .relay_plugins import drop_oversized, plugin_endpoint

log = logging.getLogger("minisentry.relay")

if TYPE_CHECKING:
    from ..plugin_items import PluginItems
    from ..api import WebApi
    from ..project_settings import ProjectSettings
    from ..uploadapi import UploadApi
    from ..web import WebUi

__all__ = ["Relay"]

#: Minidump uploads parsed (and decompressed) at the same time; the others wait their turn.
_MINIDUMP_SLOTS = 2
_INGEST_RE = re.compile(r"^/api/(\d{1,18})/(envelope|store|minidump)/?$")
_SECURITY_RE = re.compile(r"^/api/(\d{1,18})/(security|csp-report)/?$")
#: A plugin's endpoint (``minisentry_register_endpoints``): POST /api/<project_id>/<name>/.
_PLUGIN_RE = re.compile(r"^/api/(\d{1,18})/([a-z][a-z0-9_]{0,39})/?$")
_CRON_RE = re.compile(r"^/api/(\d{1,18})/cron/([A-Za-z0-9_-]{1,50})/([0-9a-fA-F]{32})/?$")
_CORS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Expose-Headers", "X-Sentry-Error, X-Sentry-Rate-Limits, Retry-After"),
]
_PREFLIGHT = _CORS + [
    ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
    ("Access-Control-Allow-Headers", "x-sentry-auth, x-requested-with, origin, accept, content-type, "
                                     "content-encoding, authorization, sentry-trace, baggage"),
    ("Access-Control-Max-Age", "3600"),
]
_OK_EMPTY = b"{}"


class Relay:
    """The HTTP handler and accept path. ``accept`` is also the embedded entry point (no HTTP)."""

    def __init__(self, config: Config, keys: ProjectKeys, outcomes: OutcomeAggregator, api: "WebApi | None",
                 counters: QuotaCounters | None = None, *, settings: "ProjectSettings | None" = None) -> None:
        self.config = config
        self.keys = keys
        self.outcomes = outcomes
        self.api = api
        self.sender: ChannelSender | None = None
        #: The on-disk spool, when configured: envelopes wait there instead of being refused.
        self.spool: DiskSpool | None = None
        #: Quotas counted at the edge, before anything enters the pipeline: the file's ``[[quotas]]``
        #: plus each project's own (``minisentry projects settings``), when ``settings`` is given.
        self.quotas = config.quotas
        self.settings = settings
        self.trusted_proxies = parse_networks(config.server.trusted_proxies)
        # Counters from [backends] quota_counters (shared by every relay when in Redis).
        #: Minidump uploads decompressed at once (each may inflate to limits.max_attachments_bytes).
        self._minidump_slots = anyio.CapacityLimiter(_MINIDUMP_SLOTS)
        self.limiter = RateLimiter(counters if counters is not None else MemoryQuotaCounters())
        #: Edge relays only (``[upstream]``): the upstream's announced rate limits, enforced here.
        self.upstream_limits: UpstreamLimits | None = None
        #: Requests signed by the relays of ``[[relays]]`` (stacked relays, see relayauth.py).
        self.relays = RelayVerifier({relay.id: relay.public_key for relay in config.relays},
                                    max_age=config.server.relay_signature_max_age)
        self.relay_api = RelayApi(keys, self.relays)
        self.ready = False
        self.accepted = 0
        #: Set by the Pipeline: the readiness verdict and the Prometheus text for /metrics.
        self.health: Callable[[], Health] = lambda: Health(self.ready, () if self.ready else ("not running",))
        self.metrics: Callable[[], str] | None = None
        #: Source-map uploads (sentry-cli's chunk upload, see uploadapi.py); set by the Pipeline.
        self.uploads: "UploadApi | None" = None
        #: Plugins' item types and endpoints (``plugin_items.PluginItems``); set by the Pipeline.
        self.plugin_items: "PluginItems | None" = None
        #: The web UI under ``/ui/`` (``web.routes.WebUi``), when ``[web] enabled``; set by the Pipeline.
        self.web: "WebUi | None" = None

    # -- Handler protocol -----------------------------------------------------------------------

    def body_limit(self, request: Request) -> int:
        """Return the decoded body limit for the route; raises PayloadTooLarge never (checked later)."""
        limits = self.config.limits
        path = request.path
        if path.endswith(("/envelope/", "/envelope")):
            return limits.max_envelope_bytes
        if path.endswith(("/store/", "/store")):
            return limits.max_event_bytes
        if path.endswith(("/minidump/", "/minidump")):
            # The files plus the event fields; the multipart parser bounds each kind on its own.
            return limits.max_attachments_bytes + limits.max_event_bytes
        if self.uploads is not None and self.uploads.matches(path):
            return self.uploads.body_limit(request)
        endpoint = self._endpoint_of(path)
        if endpoint is not None:
            return self.plugin_items.types[endpoint.item_type].max_bytes
        return limits.max_api_body_bytes

    def _endpoint_of(self, path: str) -> object | None:
        match = _PLUGIN_RE.match(path) if self.plugin_items is not None and self.plugin_items.endpoints else None
        return self.plugin_items.endpoints.get(match.group(2)) if match is not None else None

    async def handle(self, request: Request) -> Response:
        """Route one request. Raises RequestError for refused requests."""
        match = _INGEST_RE.match(request.path)
        if match is not None:
            if request.method == "POST":
                event_id, limits = await self._ingest(request, int(match.group(1)), match.group(2))
                headers = _CORS if not limits else [*_CORS, ("X-Sentry-Rate-Limits", limits)]
                if match.group(2) == "minidump":
                    # Sentry answers a minidump upload with the event id alone, hyphenated.
                    return Response(200, str(uuid.UUID(event_id)).encode(), headers, content_type="text/plain")
                body = b'{"id":"%s"}' % event_id.encode() if event_id else _OK_EMPTY
                return Response(200, body, headers)
            if request.method == "OPTIONS":
                return Response(200, b"", _PREFLIGHT)
            raise MethodNotAllowed(f"{request.method} is not allowed here")
        match = _SECURITY_RE.match(request.path)
        if match is not None:
            if request.method == "OPTIONS":
                return Response(200, b"", _PREFLIGHT)
            if request.method != "POST":
                raise MethodNotAllowed(f"{request.method} is not allowed here")
            await self._security(request, int(match.group(1)))
            return Response(201, b"", _CORS)
        match = _CRON_RE.match(request.path)
        if match is not None:
            if request.method not in ("GET", "POST"):
                raise MethodNotAllowed(f"{request.method} is not allowed here")
            check_in_id = await self._cron(request, int(match.group(1)), match.group(2), match.group(3).lower())
            return Response(202, b'{"id":"%s"}' % check_in_id.encode(), _CORS)
        endpoint = self._endpoint_of(request.path)
        if endpoint is not None:
            if request.method == "OPTIONS":
                return Response(200, b"", _PREFLIGHT)
            if request.method != "POST":
                raise MethodNotAllowed(f"{request.method} is not allowed here")
            record_id = await plugin_endpoint(self, request, int(_PLUGIN_RE.match(request.path).group(1)), endpoint)
            return Response(202, orjson.dumps({"id": record_id} if record_id else {}), _CORS)
        if request.path.startswith("/api/relay/healthcheck/"):
            kind = request.path.rstrip("/").rsplit("/", 1)[-1]
            if kind == "live":
                return Response(200, b'{"is_healthy":true}')
            if kind == "ready":
                health = self.health()
                body = orjson.dumps({"is_healthy": health.ready, "reasons": list(health.reasons)})
                return Response(200 if health.ready else 503, body)
        if request.path == "/metrics" and request.method == "GET" and self.metrics is not None:
            return Response(200, self.metrics().encode(), content_type="text/plain; version=0.0.4")
        if request.path.startswith("/api/0/relays/"):
            return await self.relay_api.handle(request)
        if self.uploads is not None and self.uploads.matches(request.path):
            return await self.uploads.handle(request)
        if request.path.startswith("/api/0/") and self.api is not None:
            return await self.api.handle(request)
        if self.web is not None and self.web.matches(request.path):
            return await self.web.handle(request)
        raise NotFound(f"no route for {request.path}")

    def error(self, exc: RequestError, request: Request | None) -> Response:
        """Render a refused request as ``{"detail": ...}`` with Sentry's headers."""
        headers = list(_CORS) if request is not None and request.path.startswith("/api/") else []
        headers.append(("X-Sentry-Error", exc.detail.replace("\r", " ").replace("\n", " ")[:200]))
        if isinstance(exc, PipelineFull):
            headers.append(("Retry-After", str(exc.retry_after)))
        elif isinstance(exc, RateLimited):
            headers.append(("Retry-After", str(exc.retry_after)))
            headers.append(("X-Sentry-Rate-Limits", exc.rate_limits))
        elif isinstance(exc, (BadRequest, PayloadTooLarge)) and request is not None \
                and not getattr(exc, "counted", False):
            self._count_refused_request(request, exc)
        return Response(exc.status, orjson.dumps({"detail": exc.detail}), headers)

    # -- the accept path --------------------------------------------------------------------------

    async def _ingest(self, request: Request, project_id: int, endpoint: str) -> tuple[str | None, str]:
        """Authenticate, parse, apply quotas and hand off; return (event id, rate limits to announce)."""
        relay_id = None
        if RELAY_ID_HEADER.lower() in request.headers or SIGNATURE_HEADER.lower() in request.headers:
            # A downstream relay forwarding: its signature must hold before anything else is read.
            relay_id = self.relays.verify(request.headers, request.body)
        key = key_from_headers(request.headers) or key_from_query(request.query)
        if key is not None:
            key, project_id = await self.project_of_key(key, project_id)
        if endpoint == "minidump":
            # A compressed dump may inflate to max_attachments_bytes: off the event loop, and only a
            # few at a time, so uploads cannot stall the front door or pile up inflated copies.
            async with self._minidump_slots:
                envelope = await anyio.to_thread.run_sync(self._parse, request.body, endpoint,
                                                          request.headers.get("content-type"))
        else:
            envelope = self._parse(request.body, endpoint, request.headers.get("content-type"))
        if key is None:
            dsn_key = key_from_dsn(envelope.headers.get("dsn"))
            if dsn_key is None:
                raise AuthMissing("missing authorization information")
            key, project_id = await self.project_of_key(dsn_key, project_id)
        if self.plugin_items:
            envelope = drop_oversized(self, envelope, project_id)
        announce = ""
        if self.upstream_limits is not None:
            result = self.upstream_limits.check(project_id, key, envelope.items)
            if result is not None:
                envelope = await self._drop_limited(envelope, project_id, key, result)
                announce = result.header()
            elif active := self.upstream_limits.active(project_id, key):
                announce = format_rate_limits(active)  # categories blocked upstream, announced on the 200
        if self.settings.any_quotas if self.settings is not None else self.quotas:
            envelope, local = await self._apply_quotas(envelope, project_id, key)
            announce = ", ".join(part for part in (announce, local) if part)
        if relay_id is not None:
            # A trusted relay names the client it serves (it sets X-Forwarded-For to that one address).
            remote = request.headers.get("x-forwarded-for", "").split(",")[-1].strip() or request.remote_addr
        else:
            remote = client_ip(request.remote_addr, request.headers.get("x-forwarded-for"), self.trusted_proxies)
        event_id = await self.accept(envelope, project_id, key, remote_addr=remote)
        return event_id, announce

    async def _apply_quotas(self, envelope: Envelope, project_id: int, key: str) -> tuple[Envelope, str]:
        """Drop the items over quota (outcome rate_limited); raise RateLimited if nothing is left.

        Returns the envelope with the allowed items and the ``X-Sentry-Rate-Limits`` value to put on
        the 200 (categories limited in this envelope, or fully blocked right now).
        """
        quotas = self.settings.quotas_of(project_id) if self.settings is not None else self.quotas
        result = await self.limiter.check(project_id, key, envelope_quantities(envelope.items), quotas)
        if result.is_limited:
            return await self._drop_limited(envelope, project_id, key, result), result.header()
        active = self.limiter.active_limits(project_id, key, quotas)
        return envelope, format_rate_limits(active) if active else ""

    async def _drop_limited(self, envelope: Envelope, project_id: int, key: str, result: RateLimitResult) -> Envelope:
        """Drop the items ``result`` rejects (outcome rate_limited); raise RateLimited if nothing is left."""
        kept, dropped = partition_items(envelope.items, result)
        for item, category, limit in dropped:
            quantity = len(item.payload) if category == "attachment" else 1
            self.outcomes.record(project_id, Outcome.RATE_LIMITED, category, limit.reason_code or "", quantity)
        if not any(item.type != "client_report" for item in kept):
            if kept:
                await self.accept(Envelope(envelope.headers, kept), project_id, key)
            raise RateLimited("rate limited: over quota", retry_after=result.retry_after or 1,
                              rate_limits=result.header())
        return Envelope(envelope.headers, kept)

    async def project_of_key(self, key: str, project_id: int) -> tuple[str, int]:
        """Check a public key's format, make sure it is known (may ask the upstream) and return it
        with its project. Raises AuthForbidden (malformed, unknown or disabled key, or a key of
        another project), PipelineFull (upstream unreachable)."""
        key = check_key_format(key)
        await self.keys.ensure(key)
        return key, self.keys.project_of(key, project_id)

    async def _security(self, request: Request, project_id: int) -> None:
        """Browser CSP reports (key in the query string, as browsers cannot set headers)."""
        key = key_from_query(request.query) or key_from_headers(request.headers)
        if key is None:
            raise AuthMissing("missing authorization information: add ?sentry_key=<public key>")
        key, project_id = await self.project_of_key(key, project_id)
        events = csp_events(request.body, request.headers.get("user-agent"))
        for event in events:
            envelope = Envelope({"event_id": event["event_id"]}, [Item({"type": "security"}, orjson.dumps(event))])
            await self.accept(envelope, project_id, key, remote_addr=request.remote_addr)

    async def _cron(self, request: Request, project_id: int, slug: str, key: str) -> str:
        """A check-in over plain HTTP (``?status=ok|in_progress|error[&check_in_id=][&environment=]``).

        An optional JSON body may carry ``monitor_config``. Returns the check-in id. Raises
        AuthForbidden for a wrong key, BadRequest for a bad status or body.
        """
        await self.keys.ensure(key)
        self.keys.project_of(key, project_id)
        params = dict(parse_qsl(request.query))
        payload: dict[str, object] = {"monitor_slug": slug.lower(), "status": params.get("status", "")}
        for name in ("check_in_id", "environment"):
            if name in params:
                payload[name] = params[name]
        if "duration" in params:
            try:
                payload["duration"] = float(params["duration"])
            except ValueError as exc:
                raise BadRequest("duration must be a number of seconds") from exc
        if request.body.strip():
            body = json_object(request.body)
            payload.update({k: v for k, v in body.items() if k in ("monitor_config", "status", "environment")})
        try:
            check_in = parse_check_in(project_id, payload, time.time())
        except CheckInError as exc:
            raise BadRequest(str(exc)) from exc
        payload["check_in_id"] = check_in.check_in_id
        await self.accept(Envelope({}, [Item({"type": "check_in"}, orjson.dumps(payload))]), project_id, key,
                          remote_addr=request.remote_addr)
        return check_in.check_in_id

    def _parse(self, body: bytes, endpoint: str, content_type: str | None = None) -> Envelope:
        return request_envelope(body, endpoint, content_type, self.config.limits)

    async def accept(self, envelope: Envelope, project_id: int, public_key: str = "", *,
                     remote_addr: str | None = None) -> str | None:
        """Hand an authenticated envelope to the pipeline; return its event id (if it has events).

        Waits at most ``stages.enqueue_timeout`` for room. Raises PipelineFull (429) when the
        pipeline stays full and InvalidEnvelope for a malformed ``event_id`` header.
        """
        if self.sender is None or not self.ready:
            raise PipelineFull("pipeline is not accepting events", retry_after=self.config.stages.retry_after)
        event_id = envelope_event_id(envelope)
        message = EnvelopeMessage(project_id, public_key, time.time(), envelope, remote_addr)
        spool = self.spool
        if spool is None or not len(spool):
            # With a spool holding older messages, new ones queue behind them (FIFO).
            try:
                self.sender.send_nowait(message)
            except anyio.WouldBlock:
                if spool is None:
                    sent = False
                    with anyio.move_on_after(self.config.stages.enqueue_timeout):
                        await self._send(message)
                        sent = True
                    if sent:
                        await self._confirm(message)
                        self.accepted += 1
                        return event_id
                    self._refuse(message)
                    raise PipelineFull("pipeline is full, retry later",
                                       retry_after=self.config.stages.retry_after) from None
            except BackendError as exc:
                self._backend_failed(message, exc)
            else:
                await self._confirm(message)
                self.accepted += 1
                return event_id
        try:
            await anyio.to_thread.run_sync(spool.put, encode_envelope_message(message))
        except SpoolFull:
            self._refuse(message, "spool_full")
            raise
        self.accepted += 1
        return event_id

    async def _send(self, message: EnvelopeMessage) -> None:
        try:
            await self.sender.send(message)
        except BackendError as exc:
            self._backend_failed(message, exc)

    async def _confirm(self, message: EnvelopeMessage) -> None:
        """Return once the channel holds the message durably (Kafka: on the broker)."""
        try:
            await self.sender.confirm()
        except BackendError as exc:
            self._backend_failed(message, exc)

    def _backend_failed(self, message: EnvelopeMessage, exc: BackendError) -> None:
        self._refuse(message, "backend_unavailable")
        log.error("channel backend failed, refusing an envelope of project %s: %s", message.project_id, exc)
        raise PipelineFull("the pipeline cannot store events right now, retry later",
                           retry_after=self.config.stages.retry_after) from exc

    def _refuse(self, message: EnvelopeMessage, reason: str = "pipeline_full") -> None:
        for item in message.envelope.items:
            self.outcomes.record(message.project_id, Outcome.RATE_LIMITED, category_of_item(item.type), reason)

    def _count_refused_request(self, request: Request, exc: RequestError) -> None:
        """Record an ``invalid`` outcome for a refused request whose header key proves its project.

        Unauthenticated requests are not counted: anyone could otherwise write outcome rows.
        """
        match = _INGEST_RE.match(request.path)
        key = key_from_headers(request.headers) or key_from_query(request.query)
        if match is None or key is None:
            return
        project_id = int(match.group(1))
        if self.keys.known_project_of(key.strip().lower()) != project_id:
            return
        if match.group(2) == "minidump":
            # A refused crash upload is an error event lost, and its bytes an attachment lost (as Relay counts).
            self.outcomes.record(project_id, Outcome.INVALID, "error", exc.reason)
            if request.body:
                self.outcomes.record(project_id, Outcome.INVALID, "attachment", exc.reason, len(request.body))
        else:
            self.outcomes.record(project_id, Outcome.INVALID, "default", exc.reason)
