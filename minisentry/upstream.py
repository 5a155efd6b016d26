"""The edge relay's HTTP client for its upstream minisentry: signed requests, retries, answers.

:class:`UpstreamClient` wraps one pooled ``httpx.AsyncClient`` (it runs on trio and asyncio alike).
Every request is signed with the relay's credentials (``relayauth.py``). Two calls:

- :meth:`UpstreamClient.forward` POSTs an accepted envelope to ``/api/<project>/envelope/`` with the
  SDK's public key in ``X-Sentry-Auth`` (so the upstream checks and attributes it as usual) and the
  client's address in ``X-Forwarded-For``. Connection errors, timeouts, 5xx and a 429 that carries no
  ``X-Sentry-Rate-Limits`` (the upstream's pipeline is full) are retried with exponential back-off
  and jitter; a 429 with rate limits, and every other 4xx, is final.
- :meth:`UpstreamClient.project_configs` asks ``/api/0/relays/projectconfigs/`` for public keys.

httpx's exceptions never leave this module: they become :class:`~minisentry.errors.UpstreamError`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import orjson

from .config import UpstreamConfig
from .envelope import serialize_envelope
from .errors import UpstreamError
from .messages import EnvelopeMessage
from .relayauth import RelayCredentials

__all__ = ["UpstreamClient", "ForwardResult", "backoff_delay", "MAX_KEYS_PER_REQUEST"]

#: The most public keys asked for in one project-config request (the upstream refuses more).
MAX_KEYS_PER_REQUEST = 100
_USER_AGENT = "minisentry-relay/0.1"


@dataclass(frozen=True, slots=True)
class ForwardResult:
    """The upstream's final answer to a forwarded envelope: ``status``, its rate limits and error text."""

    status: int
    rate_limits: str | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """Whether the upstream took the envelope (2xx)."""
        return 200 <= self.status < 300


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): ``initial * 2**attempt`` capped at
    ``cap``, then scaled by a random factor in [0.5, 1] so that many relays do not retry in step."""
    base = min(cap, initial * (2 ** min(attempt, 32)))
    return base * (rng or random).uniform(0.5, 1.0)


class UpstreamClient:
    """Signed, pooled HTTP to the upstream. Use as ``async with``; methods block on the network.

    ``transport`` replaces the network (tests). At most ``max_concurrency`` + 2 connections are
    open: one per forwarder worker, plus room for project-config fetches.
    """

    def __init__(self, config: UpstreamConfig, credentials: RelayCredentials, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.credentials = credentials
        self.base_url = config.url.rstrip("/")
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout),
            limits=httpx.Limits(max_connections=config.max_concurrency + 2,
                                max_keepalive_connections=config.max_concurrency + 2),
            transport=transport, headers={"User-Agent": _USER_AGENT})

    async def __aenter__(self) -> "UpstreamClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST a signed ``body`` to ``path`` once; return the response, whatever its status.

        Raises UpstreamError (retryable) when no answer arrived: connection refused or reset, timeout.
        """
        signed = {**(headers or {}), **self.credentials.sign(body)}
        try:
            return await self._client.post(self.base_url + path, content=body, headers=signed)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"cannot reach upstream {self.base_url}: {type(exc).__name__}: {exc}") from exc

    async def forward(self, message: EnvelopeMessage, *, attempts: int | None = None) -> ForwardResult:
        """Send one envelope, retrying what may succeed later; return the final answer.

        ``attempts`` defaults to ``1 + max_retries``. Raises UpstreamError when every attempt failed
        with a retryable error (the caller spools the envelope) and InvalidEnvelope when it cannot
        be serialized.
        """
        body = serialize_envelope(message.envelope)
        headers = {"Content-Type": "application/x-sentry-envelope"}
        if message.public_key:
            headers["X-Sentry-Auth"] = (f"Sentry sentry_key={message.public_key}, sentry_version=7, "
                                        f"sentry_client={_USER_AGENT}")
        if message.remote_addr:
            headers["X-Forwarded-For"] = message.remote_addr
        path = f"/api/{message.project_id}/envelope/"
        attempts = 1 + self.config.max_retries if attempts is None else attempts
        last = "no attempt"
        for attempt in range(attempts):
            delay = backoff_delay(attempt, self.config.retry_initial, self.config.retry_max)
            try:
                response = await self.post(path, body, headers)
            except UpstreamError as exc:
                last = str(exc)
            else:
                result = _result_of(response)
                if result is not None:
                    return result
                last = f"upstream answered {response.status_code}: {result_error(response)}"
                delay = max(delay, _retry_after(response, self.config.retry_max))
            if attempt + 1 < attempts:
                await anyio.sleep(delay)
        raise UpstreamError(f"gave up after {attempts} attempt(s): {last}")

    async def project_configs(self, keys: list[str]) -> dict[str, dict[str, Any] | None]:
        """Ask the upstream for the configs of up to MAX_KEYS_PER_REQUEST public keys, in one attempt.

        Returns key → config, or None for a key the upstream does not know. Raises UpstreamError for
        no answer, a non-200 answer (``status`` set; a 401/403 means this relay is not trusted) or a
        malformed one.
        """
        body = orjson.dumps({"publicKeys": keys[:MAX_KEYS_PER_REQUEST]})
        response = await self.post("/api/0/relays/projectconfigs/", body, {"Content-Type": "application/json"})
        if response.status_code != 200:
            raise UpstreamError(f"project configs: upstream answered {response.status_code}: "
                                f"{result_error(response)}", status=response.status_code,
                                retryable=response.status_code >= 500 or response.status_code == 429)
        try:
            configs = orjson.loads(response.content)["configs"]
            if not isinstance(configs, dict):
                raise TypeError("configs is not an object")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise UpstreamError(f"project configs: malformed answer: {exc}", status=200) from exc
        return {key: value if isinstance(value, dict) else None for key, value in configs.items()}


def _result_of(response: httpx.Response) -> ForwardResult | None:
    """The final result for this answer, or None when it should be retried."""
    status = response.status_code
    limits = response.headers.get("x-sentry-rate-limits")
    if status >= 500 or (status == 429 and not limits):
        return None
    return ForwardResult(status, limits, "" if 200 <= status < 300 else result_error(response))


def result_error(response: httpx.Response) -> str:
    """The upstream's reason for a refusal: its ``X-Sentry-Error`` or the start of the body."""
    return response.headers.get("x-sentry-error") or response.text[:200]


def _retry_after(response: httpx.Response, cap: float) -> float:
    value = response.headers.get("retry-after", "").strip()
    return min(float(value), cap) if value.isdigit() else 0.0
