"""An SSRF-safe HTTP fetcher for minified files and source maps (httpx).

Policy, checked for the first URL and again for every redirect target:

- only ``http`` and ``https``; no credentials in the URL; the host must match
  ``[sourcemaps] fetch_allowed_hosts`` (default ``*``);
- the host name is resolved here and *every* address it resolves to must be public unless it lies
  in ``fetch_private_networks``, and the connection goes to the checked address itself (the
  shared policy of ``ssrf.py``: no loopback, private, link-local, carrier-grade NAT, multicast or
  reserved ranges, IPv4 carried in IPv6 judged as IPv4, no DNS rebinding);
- at most ``fetch_max_redirects`` redirects, ``fetch_max_bytes`` of body (read while streaming),
  ``fetch_timeout`` seconds for the whole fetch including redirects.

Errors: FetchRefused (the policy said no: event error ``restricted_ip``/``js_scraping_disabled``),
FetchError (status, size, time, transport). Library exceptions never escape.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import anyio
import httpx

from .clientip import parse_networks
from .config_sourcemaps import SourcemapsConfig
from .errors import FetchError, FetchRefused
from .ssrf import address_problem, pinned_target, resolve_addresses

__all__ = ["Fetcher", "Fetched", "check_address"]

_REDIRECTS = frozenset((301, 302, 303, 307, 308))


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched body with the final URL and its response headers (lowercase names)."""

    url: str
    body: bytes
    headers: dict[str, str]


def check_address(address: str, allowed: tuple) -> None:
    """Raise FetchRefused unless ``address`` is public or inside one of the ``allowed`` networks."""
    problem = address_problem(address, allowed)
    if problem is not None:
        raise FetchRefused(problem, kind="restricted_ip")


class Fetcher:
    """Fetches with the policy of the module docstring. One per symbolicator; ``aclose`` when done."""

    def __init__(self, config: SourcemapsConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.allowed_networks = parse_networks(config.fetch_private_networks)
        # No redirects, proxies or environment settings: every hop is checked here.
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False, transport=transport,
                                         timeout=config.fetch_timeout)
        self.fetched = 0
        self.refused = 0

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def fetch(self, url: str) -> Fetched:
        """Fetch ``url`` within the limits. Raises FetchRefused or FetchError (never an httpx error)."""
        if not self.config.fetch:
            raise FetchRefused("fetching source files is disabled ([sourcemaps] fetch)", kind="js_scraping_disabled")
        try:
            with anyio.fail_after(self.config.fetch_timeout):
                for _ in range(self.config.fetch_max_redirects + 1):
                    result = await self._get(url)
                    if isinstance(result, Fetched):
                        return result
                    url = result
                raise FetchError(f"more than {self.config.fetch_max_redirects} redirects", kind="fetch_generic_error")
        except TimeoutError as exc:
            raise FetchError(f"fetching {url} took longer than {self.config.fetch_timeout}s",
                             kind="fetch_timeout") from exc
        except FetchRefused:
            self.refused += 1
            raise

    async def _resolve(self, host: str, port: int) -> str:
        """Resolve ``host`` and check every address; return the first. Raises FetchRefused/FetchError."""
        try:
            addresses = await resolve_addresses(host, port)
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"cannot resolve {host}: {exc}", kind="fetch_generic_error") from exc
        if not addresses:
            raise FetchError(f"{host} has no address", kind="fetch_generic_error")
        for address in addresses:
            check_address(address, self.allowed_networks)
        return addresses[0]

    async def _get(self, url: str) -> "str | Fetched":
        """One hop: return the redirect target or what was fetched."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise FetchRefused(f"invalid URL {url[:200]!r}", kind="js_invalid_url") from exc
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise FetchRefused(f"only http(s) URLs with a host are fetched, not {url[:200]!r}", kind="js_invalid_url")
        if parts.username or parts.password:
            raise FetchRefused("URLs with credentials are not fetched", kind="js_invalid_url")
        if not self.config.host_allowed(host):
            raise FetchRefused(f"host {host} is not in sourcemaps.fetch_allowed_hosts", kind="js_scraping_disabled")
        address = await self._resolve(host, port)
        pinned, headers, extensions = pinned_target(parts, host, address)
        headers.update({"Accept-Encoding": "gzip, deflate", "User-Agent": "minisentry-symbolicator"})
        try:
            async with self._client.stream("GET", pinned, headers=headers, extensions=extensions) as response:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    return urljoin(url, response.headers["location"])
                if response.status_code != 200:
                    raise FetchError(f"{url[:200]} answered {response.status_code}", kind="js_invalid_http_code")
                limit = self.config.fetch_max_bytes
                too_large = FetchError(f"{url[:200]} exceeds {limit} bytes", kind="fetch_too_large")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise too_large
                body = bytearray()
                over = False
                # Without a Content-Length the rest is read and dropped (memory stays bounded; the
                # fetch timeout bounds the time): leaving httpx's stream early leaks its generators.
                async for piece in response.aiter_bytes():
                    if not over:
                        body += piece
                        over = len(body) > limit
                if over:
                    raise too_large
                self.fetched += 1
                return Fetched(url, bytes(body), {k.lower(): v for k, v in response.headers.items()})
        except httpx.HTTPError as exc:
            raise FetchError(f"fetching {url[:200]} failed: {exc}", kind="fetch_generic_error") from exc
