"""Posting alert JSON to webhooks without letting a webhook URL reach inside the network (SSRF).

Policy, for every request:

- only ``http`` and ``https`` URLs with a host and without credentials (``check_url_syntax``);
- the host is resolved here and *every* address it resolves to must be public: not loopback,
  private, link-local, carrier-grade NAT, multicast, reserved or unspecified (``ipaddress``; an
  IPv4-mapped or 6to4 IPv6 address is judged by its IPv4 address), unless ``[alerts]
  allow_private_addresses = true``;
- the connection goes to the checked address itself, with the URL's host as ``Host`` header and TLS
  server name, so a second DNS answer cannot swap in another address between check and connect
  (DNS rebinding);
- redirects are not followed (a 3xx is a permanent failure), proxies from the environment are not
  used, and each request is bounded by ``[alerts] timeout``.

Errors: AlertRefused (the policy said no; never retried), AlertDeliveryError with ``retryable``
(connection errors, timeouts, 5xx and 429 are retryable; other answers are not). httpx's exceptions
never escape.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import anyio
import httpx

from .config_alerts import check_url_syntax
from .errors import AlertDeliveryError, AlertRefused
from .ssrf import address_problem, pinned_target, resolve_addresses

__all__ = ["WebhookPoster", "check_public_address"]


def check_public_address(address: str) -> None:
    """Raise AlertRefused unless ``address`` (an IP literal, IPv6 zone allowed) is a public unicast address."""
    problem = address_problem(address)
    if problem is not None:
        raise AlertRefused(f"{problem}; set [alerts] allow_private_addresses = true to allow it")


class WebhookPoster:
    """POSTs JSON under the policy above, over one connection pool. ``aclose`` when done.

    ``transport`` is for tests (httpx.MockTransport); ``resolve`` replaces DNS resolution (tests).
    """

    def __init__(self, *, timeout: float, allow_private: bool, max_connections: int = 4,
                 transport: httpx.AsyncBaseTransport | None = None, resolve=None) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._resolve_fn = resolve
        # No redirects, proxies or environment settings: every request is checked here.
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False, transport=transport,
                                         timeout=timeout, limits=httpx.Limits(max_connections=max_connections))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def resolve(self, host: str, port: int) -> str:
        """Resolve ``host`` and vet every address; return the first. Raises AlertRefused / AlertDeliveryError."""
        try:
            if self._resolve_fn is not None:
                addresses = list(await self._resolve_fn(host, port))
            else:
                addresses = await resolve_addresses(host, port)
        except (OSError, UnicodeError) as exc:
            # DNS may be down for a moment: worth another try.
            raise AlertDeliveryError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise AlertDeliveryError(f"{host} has no address")
        if not self.allow_private:
            for address in addresses:
                check_public_address(address)
        return addresses[0]

    async def post_json(self, url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
        """POST ``body`` (JSON) to ``url``; return the 2xx status. Raises AlertRefused or AlertDeliveryError."""
        problem = check_url_syntax(url)
        if problem:
            raise AlertRefused(problem)
        parts = urlsplit(url)
        scheme, host = parts.scheme, (parts.hostname or "").lower().encode("idna").decode("ascii")
        port = parts.port or (443 if scheme == "https" else 80)
        address = await self.resolve(host, port)
        pinned, host_header, extensions = pinned_target(parts, host, address)
        sent_headers = {**(headers or {}), **host_header, "Content-Type": "application/json",
                        "User-Agent": "minisentry-alerts"}
        start = bytearray()
        try:
            with anyio.fail_after(self.timeout):
                async with self._client.stream("POST", pinned, content=body, headers=sent_headers,
                                               extensions=extensions) as response:
                    # Keep the first bytes for the log, drop the rest (memory stays bounded; the
                    # timeout bounds the time). Leaving the stream early would leak httpx's generators.
                    async for piece in response.aiter_bytes():
                        if len(start) < 200:
                            start += piece[:200 - len(start)]
        except TimeoutError as exc:
            raise AlertDeliveryError(f"{host}: no answer within {self.timeout}s") from exc
        except httpx.InvalidURL as exc:
            raise AlertRefused(f"{url[:200]!r} is not a URL we can send to: {exc}") from exc
        except httpx.HTTPError as exc:
            raise AlertDeliveryError(f"{host}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return status
        retryable = status >= 500 or status in (408, 429)
        what = "redirects are not followed" if 300 <= status < 400 else start.decode("utf-8", "replace")
        raise AlertDeliveryError(f"{host} answered {status}: {what}", retryable=retryable)
