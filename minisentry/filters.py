"""Inbound filters: per-project rules that drop unwanted events, as Relay's ``relay-filter`` does.

:func:`should_filter` looks at one event *after* Relay normalization and returns Sentry's reason key
for the first filter that matches, or None. The caller records a ``filtered`` outcome with that
reason. It never raises, and it does not change the event.

Filters, in Relay's order (``relay-filter/src/lib.rs``), with the reason key each one gives:

=====================  ======================  ================================================
setting                reason key              drops
=====================  ======================  ================================================
``blacklisted_ips``    ``ip-address``          events whose *client* IP (the sender's address,
                                               passed in, not ``user.ip_address``) is one of
                                               these IPs or falls in one of these CIDRs (v4/v6)
``releases``           ``release-version``     events whose ``release`` matches a glob
``error_messages``     ``error-message``       events whose ``logentry.formatted`` (else
                                               ``logentry.message``) or any exception's
                                               ``"{type}: {value}"`` matches a glob
``localhost``          ``localhost``           ``user.ip_address`` 127.0.0.1 or ::1; a
                                               ``request.url`` on localhost, 127.0.0.1 or a
                                               subdomain of them, or a ``file:`` URL; an
                                               ``X-Forwarded-For`` of 127.0.0.1/::1; with no
                                               usable URL, a ``Host``/``X-Forwarded-Host`` of
                                               localhost or 127.0.0.1 (any port)
``browser_extensions`` ``browser-extensions``  the first exception's value names a known
                                               extension error, or its innermost frame with a
                                               real ``abs_path`` is ``chrome-extension://``,
                                               ``moz-extension://``, ``safari-web-extension://``
                                               and the like
``legacy_browsers``    ``legacy-browsers``     a ``User-Agent`` header of an old browser
``web_crawlers``       ``web-crawlers``        a ``User-Agent`` header of a known crawler or bot
``health_checks``      ``filtered-transaction`` transactions named like a health check
                                               (:data:`HEALTH_CHECK_GLOBS`)
=====================  ======================  ================================================

Defaults are what Sentry switches on for a new project (``set_default_inbound_filters`` in
``sentry/api/helpers/default_inbound_filters.py``): browser extensions, legacy browsers (the eight
current browser keys), web crawlers and health checks on; localhost off; no messages, releases or
IPs. ``FilterSettings()`` is that set.

Globs (``releases``, ``error_messages``, the health checks) follow Relay's patterns and ignore case;
:mod:`minisentry.globs` has the syntax. Unlike Relay, which silently ignores a glob it cannot parse,
:meth:`FilterSettings.from_mapping` refuses it.

Legacy browsers and web crawlers are told apart by the ``User-Agent`` header (and
``contexts.browser``), in :mod:`minisentry.useragents`, which lists the accepted
``legacy_browsers`` keys (:data:`LEGACY_BROWSER_KEYS`) and their version cut-offs.

Cost: patterns and networks are compiled once per settings value (memoized on the object and in a
small table keyed by value, so a copy unpickled in a worker process reuses it). Per event: a few
dict lookups, one regex per text looked at (fixed lists and user globs alike, on lowercased text)
and one set lookup per distinct CIDR prefix length; about 16 µs on a 6-9 KB normalized error with
every filter on, against about 500 µs to normalize it. ``FilterSettings`` holds only bools and
tuples of strings, so it pickles small for ``stages.process_workers``.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .globs import GlobSet, lowercase_alternation, parse_glob
from .useragents import LEGACY_BROWSER_KEYS, BrowserRanges, is_crawler, is_legacy_browser, legacy_ranges

__all__ = [
    "BROWSER_EXTENSIONS",
    "ERROR_MESSAGE",
    "FilterSettings",
    "HEALTH_CHECK_GLOBS",
    "IP_ADDRESS",
    "LEGACY_BROWSERS",
    "LEGACY_BROWSER_KEYS",
    "LOCALHOST",
    "REASONS",
    "RELEASE_VERSION",
    "TRANSACTION",
    "WEB_CRAWLERS",
    "should_filter",
]

# Sentry's FilterStatKey names (relay-filter/src/common.rs; sentry.ingest.inbound_filters).
IP_ADDRESS = "ip-address"
RELEASE_VERSION = "release-version"
ERROR_MESSAGE = "error-message"
LOCALHOST = "localhost"
BROWSER_EXTENSIONS = "browser-extensions"
LEGACY_BROWSERS = "legacy-browsers"
WEB_CRAWLERS = "web-crawlers"
TRANSACTION = "filtered-transaction"
#: Every reason key :func:`should_filter` can return, in the order the filters run.
REASONS = (IP_ADDRESS, RELEASE_VERSION, ERROR_MESSAGE, LOCALHOST, BROWSER_EXTENSIONS, LEGACY_BROWSERS,
           WEB_CRAWLERS, TRANSACTION)

#: Transaction names Sentry treats as health checks (``HEALTH_CHECK_GLOBS`` in ``sentry/constants.py``).
HEALTH_CHECK_GLOBS = ("*healthcheck*", "*heartbeat*", "*/health", "*/healthy", "*/healthz", "*/live",
                      "*/livez", "*/ready", "*/readyz", "*/ping")

_SWITCHES = ("localhost", "browser_extensions", "web_crawlers", "health_checks")  # the on/off settings
_NEW_PROJECT_BROWSERS = ("ie", "firefox", "chrome", "safari", "opera", "opera_mini", "android", "edge")


@dataclass(frozen=True)
class FilterSettings:
    """Which inbound filters are on, as plain picklable data. ``FilterSettings()`` = Sentry's new-project defaults.

    Construct directly (no validation) or with :meth:`from_mapping` (validated). Hashable and
    comparable by value; compiled patterns are cached per value, never pickled.
    """

    localhost: bool = False
    browser_extensions: bool = True
    web_crawlers: bool = True
    health_checks: bool = True
    legacy_browsers: tuple[str, ...] = _NEW_PROJECT_BROWSERS
    error_messages: tuple[str, ...] = ()
    releases: tuple[str, ...] = ()
    blacklisted_ips: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, raw: Any, where: str = "filters") -> FilterSettings:
        """Build settings from a config table (e.g. TOML ``[filters]``); missing keys keep the defaults.

        ``where`` names the table in messages (``"minisentry.toml: filters"``). Never blocks.
        Raises ConfigError naming the key for an unknown key, a wrong type, an unknown browser key
        (or ``default`` mixed with others), an empty or unparsable glob, or a bad IP/CIDR.
        """
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where} must be a table, got {type(raw).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in fields:
                raise ConfigError(f"unknown key '{where}.{key}' (known: {', '.join(fields)})")
            name = f"{where}.{key}"
            if key in _SWITCHES:
                if not isinstance(value, bool):
                    raise ConfigError(f"{name} must be true or false, got {value!r}")
                values[key] = value
            else:
                values[key] = _strings(value, name)
        settings = cls(**values)
        _check_browsers(settings.legacy_browsers, f"{where}.legacy_browsers")
        for key in ("error_messages", "releases"):
            for index, glob in enumerate(getattr(settings, key)):
                try:
                    parse_glob(glob)
                except ValueError as exc:
                    raise ConfigError(f"{where}.{key}[{index}]: {glob!r} is not a valid glob: {exc}") from None
        for index, text in enumerate(settings.blacklisted_ips):
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ConfigError(f"{where}.blacklisted_ips[{index}]: {text!r} is not an IP address or "
                                  "CIDR network") from None
        return settings

    def __getstate__(self) -> dict[str, Any]:
        # Only the fields travel to worker processes; the compiled form is rebuilt (or found) there.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list of strings, got {value!r}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"{name}[{index}] must be a string, got {item!r}")
    return tuple(value)


def _check_browsers(keys: tuple[str, ...], name: str) -> None:
    for index, key in enumerate(keys):
        if key not in LEGACY_BROWSER_KEYS:
            raise ConfigError(f"{name}[{index}]: unknown browser {key!r} (known: {', '.join(LEGACY_BROWSER_KEYS)})")
    if "default" in keys and len(set(keys)) > 1:
        # Relay applies only the default rules when "default" is present; say so instead of ignoring.
        raise ConfigError(f"{name}: 'default' cannot be combined with other browser keys")


# --- fixed lists ---------------------------------------------------------------------------------------

# Errors injected by browser extensions, matched anywhere in the first exception's value
# (EXTENSION_EXC_VALUES in relay-filter/src/browser_extensions.rs).
_EXTENSION_VALUES = lowercase_alternation(*(part.replace(" ", r"\s") for part in (
    r"top\.GLOBALS", r"originalCreateNotification", r"canvas\.contentDocument", r"MyApp_RemoveAllHighlights",
    r"http://tt\.epicplay\.com", r"Can't find variable: ZiteReader", r"jigsaw is not defined",
    r"ComboSearch is not defined", r"http://loading\.retry\.widdit\.com/", r"atomicFindClose",
    r"fb_xd_fragment", r"bmi_SafeAddOnload", r"EBCallBackMessageReceived", r"_gCrWeb", r"conduitPage",
    r"null is not an object \(evaluating 'elt\.parentNode'\)", r"plugin\.setSuspendState is not a function",
    r"Extension context invalidated", r"webkit-masked-url:", r"can't access dead object",
)))
# Script sources of extensions and known-flaky third parties (EXTENSION_EXC_SOURCES).
_EXTENSION_SOURCES = lowercase_alternation(
    r"graph\.facebook\.com", r"connect\.facebook\.net", r"eatdifferent\.com\.woopra-ns\.com",
    r"static\.woopra\.com/js/woopra\.js", r"^chrome(?:-extension)?://", r"^moz-extension://",
    r"^safari(?:-web)?-extension://", r"webkit-masked-url", r"127\.0\.0\.1:4001/isrunning",
    r"webappstoolbarba\.texthelp\.com/", r"metrics\.itunes\.apple\.com\.edgesuite\.net/", r"kaspersky-labs\.com",
)
# Frames without a real source, skipped when looking for the innermost one.
_ANONYMOUS_FRAMES = ("<anonymous>", "[native code]")

_LOCAL_IPS = ("127.0.0.1", "::1")
_LOCAL_DOMAINS = ("127.0.0.1", "localhost")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_HEADERS = ("user-agent", "x-forwarded-for", "host", "x-forwarded-host")


# --- compiled settings -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Compiled:
    localhost: bool
    browser_extensions: bool
    web_crawlers: bool
    messages: GlobSet
    releases: GlobSet
    networks: tuple[tuple[int, int, frozenset[int]], ...]  # (IP version, bits to drop, network numbers)
    browsers: BrowserRanges
    health_checks: GlobSet
    anything: bool


_compiled_by_value: dict[FilterSettings, _Compiled] = {}
_MAX_COMPILED = 1024
_MEMO = "_compiled"


def _compile(settings: FilterSettings) -> _Compiled:
    compiled = settings.__dict__.get(_MEMO)
    if compiled is not None:
        return compiled
    try:
        compiled = _compiled_by_value.get(settings)
        cacheable = True
    except TypeError:  # built directly with lists instead of tuples: unhashable, compile uncached
        compiled, cacheable = None, False
    if compiled is None:
        compiled = _build(settings)
        if cacheable:
            if len(_compiled_by_value) >= _MAX_COMPILED:
                _compiled_by_value.clear()
            _compiled_by_value[settings] = compiled
    # Memoized on the (frozen) object itself: the per-event lookup is one dict get, no hashing.
    object.__setattr__(settings, _MEMO, compiled)
    return compiled


def _build(settings: FilterSettings) -> _Compiled:
    by_prefix: dict[tuple[int, int], set[int]] = {}
    for text in settings.blacklisted_ips:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except (ValueError, TypeError):
            continue  # from_mapping refuses these; settings built directly skip them, as Relay does
        # An address is in a network when its top prefixlen bits equal the network's: one set lookup
        # per distinct prefix length instead of a walk over every network.
        shift = network.max_prefixlen - network.prefixlen
        by_prefix.setdefault((network.version, shift), set()).add(int(network.network_address) >> shift)
    browsers = legacy_ranges(settings.legacy_browsers)
    messages = GlobSet(settings.error_messages, skip_invalid=True)
    releases = GlobSet(settings.releases, skip_invalid=True)
    health_checks = GlobSet(HEALTH_CHECK_GLOBS if settings.health_checks else ())
    networks = tuple((version, shift, frozenset(numbers)) for (version, shift), numbers in by_prefix.items())
    return _Compiled(
        localhost=settings.localhost,
        browser_extensions=settings.browser_extensions,
        web_crawlers=settings.web_crawlers,
        messages=messages,
        releases=releases,
        networks=networks,
        browsers=browsers,
        health_checks=health_checks,
        anything=any((settings.localhost, settings.browser_extensions, settings.web_crawlers, messages, releases,
                      networks, browsers, health_checks)),
    )


# --- the filters ---------------------------------------------------------------------------------------

def should_filter(event: dict, settings: FilterSettings, client_ip: str | None) -> str | None:
    """Return the reason key of the first inbound filter ``event`` trips, or None to keep it.

    ``event`` is a Relay-normalized event dict (any JSON value is tolerated); ``client_ip`` is the
    address the event came from (socket peer or trusted ``X-Forwarded-For``), or None. Pure CPU,
    never blocks, never raises, never modifies the event.
    """
    compiled = _compile(settings)
    if not compiled.anything or not isinstance(event, dict):
        return None
    if compiled.networks and _blocked_ip(compiled.networks, client_ip):
        return IP_ADDRESS
    if compiled.releases and compiled.releases.matches(event.get("release")):
        return RELEASE_VERSION
    if compiled.messages and _message_matches(compiled.messages, event):
        return ERROR_MESSAGE
    headers = _headers(event)
    if compiled.localhost and _is_localhost(event, headers):
        return LOCALHOST
    if compiled.browser_extensions and _from_extension(event):
        return BROWSER_EXTENSIONS
    user_agent = headers.get("user-agent")
    if user_agent is not None:
        if compiled.browsers and is_legacy_browser(compiled.browsers, event, user_agent):
            return LEGACY_BROWSERS
        if compiled.web_crawlers and is_crawler(user_agent):
            return WEB_CRAWLERS
    if compiled.health_checks and event.get("type") == "transaction" \
            and compiled.health_checks.matches(event.get("transaction")):
        return TRANSACTION
    return None


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _headers(event: dict) -> dict[str, str]:
    # The first occurrence of each header the filters read; names compare case-insensitively (Relay).
    raw = _get(_get(event, "request"), "headers")
    pairs = raw.items() if isinstance(raw, dict) else raw if isinstance(raw, list) else ()
    found: dict[str, str | None] = {}
    for pair in pairs:
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str):
            name = pair[0].lower()
            if name in _HEADERS and name not in found:
                found[name] = pair[1] if isinstance(pair[1], str) else None
    return {name: value for name, value in found.items() if value is not None}


def _blocked_ip(networks: tuple[tuple[int, int, frozenset[int]], ...], client_ip: Any) -> bool:
    address = _address(client_ip) if isinstance(client_ip, str) else None
    if address is None:
        return False
    version, number = address
    return any(version == net_version and number >> shift in numbers for net_version, shift, numbers in networks)


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> tuple[int, int] | None:
    # Senders repeat, and parsing an address is most of this filter's cost: cache it.
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; block them by their IPv4 rules.
        address = address.ipv4_mapped
    return address.version, int(address)


def _message_matches(globs: GlobSet, event: dict) -> bool:
    logentry = _get(event, "logentry")
    message = _get(logentry, "formatted")
    if message is None:
        message = _get(logentry, "message")
    if globs.matches(message):
        return True
    values = _get(_get(event, "exception"), "values")
    for exception in values if isinstance(values, list) else ():
        kind, value = _get(exception, "type"), _get(exception, "value")
        kind = kind if isinstance(kind, str) else ""
        value = value if isinstance(value, str) else ""
        if globs.matches(f"{kind}: {value}" if kind and value else kind or value):
            return True
    return False


def _is_localhost(event: dict, headers: dict[str, str]) -> bool:
    if _get(_get(event, "user"), "ip_address") in _LOCAL_IPS:
        return True
    url = _parse_url(_get(_get(event, "request"), "url"))
    if url is not None:
        scheme, host = url
        if scheme == "file":
            return True
        if host and any(host == domain or host.endswith("." + domain) for domain in _LOCAL_DOMAINS):
            return True
    if headers.get("x-forwarded-for") in _LOCAL_IPS:
        return True
    if url is None:
        # Server SDKs often send no URL; then the Host a request was made to tells (Relay does this).
        for name in ("host", "x-forwarded-host"):
            value = headers.get(name)
            if value is not None and value.split(":", 1)[0] in _LOCAL_DOMAINS:
                return True
    return False


def _parse_url(url: Any) -> tuple[str, str] | None:
    # Like Relay's Url::parse: only an absolute URL with a scheme counts; anything else is "no URL".
    if not isinstance(url, str) or ":" not in url:
        return None
    scheme = url.split(":", 1)[0]
    if not _URL_SCHEME.fullmatch(scheme):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts.scheme, parts.hostname or ""


def _from_extension(event: dict) -> bool:
    values = _get(_get(event, "exception"), "values")
    if not isinstance(values, list) or not values or not isinstance(values[0], dict):
        return False
    first = values[0]
    value = first.get("value")
    if isinstance(value, str) and _EXTENSION_VALUES.search(value.lower()):
        return True
    frames = _get(first.get("stacktrace"), "frames")
    for frame in reversed(frames) if isinstance(frames, list) else ():
        path = _get(frame, "abs_path")
        if not isinstance(path, str):
            return False  # Relay stops at the innermost frame without abs_path
        if path not in _ANONYMOUS_FRAMES:
            return _EXTENSION_SOURCES.search(path.lower()) is not None
    return False
