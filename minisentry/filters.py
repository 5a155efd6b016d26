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
``legacy_browsers``    ``legacy-browsers``     a ``User-Agent`` header of an old browser (below)
``web_crawlers``       ``web-crawlers``        a ``User-Agent`` header of a known crawler or bot
``health_checks``      ``filtered-transaction`` transactions named like a health check
                                               (:data:`HEALTH_CHECK_GLOBS`)
=====================  ======================  ================================================

Defaults are what Sentry switches on for a new project (``set_default_inbound_filters`` in
``sentry/api/helpers/default_inbound_filters.py``): browser extensions, legacy browsers (the eight
current browser keys), web crawlers and health checks on; localhost off; no messages, releases or
IPs. ``FilterSettings()`` is that set.

Globs follow Relay's patterns (``relay-pattern``, used case-insensitively by ``GlobPatterns``):
``*`` any run of characters (newlines too), ``?`` one character, ``[abc]``/``[a-z]``/``[!a-z]``
one character in/not in a set, ``{a,b}`` alternatives (not nested), ``\\`` makes the next character
literal. A glob must match the *whole* string; an empty string is never matched. Case is ignored
as Relay ignores it: text and pattern are both lowercased. Unlike Relay, which silently ignores a
glob it cannot parse, :meth:`FilterSettings.from_mapping` refuses it. Globs with at most one run of
stars (``lit``, ``pre*``, ``*suf``, ``pre*suf``, ``*mid*``) are joined into one regex, which cannot
backtrack badly on that shape; globs with more stars use a linear segment-by-segment match, so a
message crafted against ``*a*a*a*b`` cannot stall a worker.

Legacy browsers: the browser family and major version come from ``contexts.browser`` (``name``,
``version``) — the process stage normalizes with ``normalize_user_agent=True``, so that is Relay's
own uap-core parse of the same ``User-Agent`` header — and, when that context is missing, from a
small built-in parser that knows the families below. As in Relay, an event without a
``User-Agent`` header is never a legacy browser, "IE Mobile" counts as "IE", and families match
exactly (so "Mobile Safari" is not "Safari", "Chrome Mobile" is not "Chrome"). Keys
(:data:`LEGACY_BROWSER_KEYS`)::

    ie  ≤ 11   edge ≤ 110   safari ≤ 15   firefox ≤ 110   chrome ≤ 110   opera ≤ 99
    android ≤ 3   opera_mini ≤ 34                  (current Sentry keys and versions)
    ie_pre_9 ≤ 8   ie9   ie10   ie11   safari_pre_6 ≤ 5   opera_pre_15 ≤ 14
    opera_mini_pre_8 ≤ 7   android_pre_4 ≤ 3   edge_pre_79 ≤ 78   (Sentry's deprecated keys)
    default    below IE 10, Safari 6, Opera 15, Opera Mini 8, Android 4 (alone only)

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

_LOWEST = -(2**31)
# key -> (browser family, lowest major, highest major), inclusive. The deprecated keys are Relay's
# (relay-filter/src/legacy_browsers.rs); the current ones are Sentry's documented cut-offs
# (sentry/ingest/inbound_filters/specs.py, after relay#5326 aligned them with Next.js in 2025).
_LEGACY_RULES: dict[str, tuple[str, int, int]] = {
    "ie": ("IE", _LOWEST, 11),
    "edge": ("Edge", _LOWEST, 110),
    "safari": ("Safari", _LOWEST, 15),
    "firefox": ("Firefox", _LOWEST, 110),
    "chrome": ("Chrome", _LOWEST, 110),
    "opera": ("Opera", _LOWEST, 99),
    "android": ("Android", _LOWEST, 3),
    "opera_mini": ("Opera Mini", _LOWEST, 34),
    "ie_pre_9": ("IE", _LOWEST, 8),
    "ie9": ("IE", 9, 9),
    "ie10": ("IE", 10, 10),
    "ie11": ("IE", 11, 11),
    "safari_pre_6": ("Safari", _LOWEST, 5),
    "opera_pre_15": ("Opera", _LOWEST, 14),
    "opera_mini_pre_8": ("Opera Mini", _LOWEST, 7),
    "android_pre_4": ("Android", _LOWEST, 3),
    "edge_pre_79": ("Edge", _LOWEST, 78),
}
# "default": a family is legacy below this major (Relay's min_version; Chrome/Firefox/Edge: never).
_DEFAULT_MINIMUMS = {"IE": 10, "Safari": 6, "Opera": 15, "Opera Mini": 8, "Android": 4}
#: Every accepted ``legacy_browsers`` key.
LEGACY_BROWSER_KEYS = ("default", *_LEGACY_RULES)
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
                    _parse_glob(glob)
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


# --- globs -------------------------------------------------------------------------------------------
#
# Case-insensitivity the way Relay does it: both the text and the glob's literals are lowercased
# (str.lower is Unicode's lowercase mapping, as Rust's to_lowercase), then compared exactly. That is
# also several times faster in Python's re than re.IGNORECASE on long alternations.

_MAX_VARIANTS = 256
_STAR = None  # a token is (regex source, length in characters of lowercased text), or _STAR


def _parse_glob(pattern: str) -> list[list[tuple[str, int]]]:
    """One variant per ``{a,b}`` choice, each its star-separated (regex source, length) segments.

    Raises ValueError naming what is wrong. Runs of stars count as one, so middle segments are
    never empty.
    """
    if not pattern:
        raise ValueError("an empty glob never matches")
    variants = []
    for tokens in _expand(pattern):
        segments: list[tuple[str, int]] = []
        current: list[tuple[str, int]] = []
        for token in tokens:
            if token is not _STAR:
                current.append(token)
            elif current or not segments:  # the head (maybe empty) or a middle; "**" adds nothing
                segments.append(_joined(current))
                current = []
        segments.append(_joined(current))  # the tail, maybe empty
        variants.append(segments)
    return variants


def _joined(tokens: list[tuple[str, int]]) -> tuple[str, int]:
    return "".join(source for source, _ in tokens), sum(length for _, length in tokens)


def _expand(pattern: str) -> list[list[Any]]:
    """Tokenize, one token list per combination of ``{a,b}`` choices. Raises ValueError."""
    variants: list[list[Any]] = [[]]
    group: list[list[Any]] | None = None  # the alternatives of the open {...}
    current: list[Any] = []
    i, end = 0, len(pattern)
    while i < end:
        char = pattern[i]
        i += 1
        if char == "*":
            current.append(_STAR)
        elif char == "?":
            current.append((".", 1))
        elif char == "[":
            source, i = _char_class(pattern, i)
            current.append((source, 1))
        elif char == "]":
            raise ValueError("unbalanced ']' (escape it as '\\]')")
        elif char == "{":
            if group is not None:
                raise ValueError("nested '{' is not supported")
            variants = [v + current for v in variants]
            group, current = [], []
        elif char == "}":
            if group is None:
                raise ValueError("unbalanced '}' (escape it as '\\}')")
            group.append(current)
            variants = [v + choice for v in variants for choice in group]
            if len(variants) > _MAX_VARIANTS:
                raise ValueError(f"more than {_MAX_VARIANTS} combinations of {{...}} choices")
            group, current = None, []
        elif char == "," and group is not None:
            group.append(current)
            current = []
        else:
            if char == "\\":
                if i == end:
                    raise ValueError("dangling '\\' at the end")
                char = pattern[i]
                i += 1
            lowered = char.lower()
            current.append((re.escape(lowered), len(lowered)))
    if group is not None:
        raise ValueError("unclosed '{'")
    return [v + current for v in variants]


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """Parse a class after its '['; return (regex source for lowercased text, index after ']')."""
    negated = pattern.startswith("!", i)
    i += negated
    ranges: list[list[str]] = []
    first, in_range = True, False
    while True:
        if i == len(pattern):
            raise ValueError("unclosed '['")
        char = pattern[i]
        i += 1
        if char == "]":
            break
        if char == "[":
            raise ValueError("'[' inside a character class (escape it as '\\[')")
        if char == "-" and first:
            ranges.append(["-", "-"])
        elif char == "-" and not in_range:
            in_range = True
        else:
            if char == "\\":
                if i == len(pattern):
                    raise ValueError("dangling '\\' at the end")
                char = pattern[i]
                i += 1
            if in_range:
                if char < ranges[-1][0]:
                    raise ValueError(f"invalid range {ranges[-1][0]}-{char}")
                ranges[-1][1] = char
                in_range = False
            else:
                ranges.append([char, char])
        first = False
    if in_range:
        ranges.append(["-", "-"])  # a trailing '-' is literal
    if not ranges:
        return ("." if negated else "(?!)"), i
    items = []
    for lo, hi in ranges:
        items.append((lo, hi))
        low_lo, low_hi = lo.lower(), hi.lower()
        # The text is lowercased, so [A-Z] must also take what A..Z lowercase to.
        if (low_lo, low_hi) != (lo, hi) and len(low_lo) == len(low_hi) == 1 and low_lo <= low_hi:
            items.append((low_lo, low_hi))
    body = "".join(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in items)
    return f"[{'^' if negated else ''}{body}]", i


class _GlobSet:
    """Several globs matched as one; see the module docstring for the syntax. Raises ValueError."""

    __slots__ = ("simple", "segmented")

    def __init__(self, patterns: tuple[str, ...], *, skip_invalid: bool = False) -> None:
        simple, segmented = [], []
        for pattern in patterns:
            try:
                variants = _parse_glob(pattern)
            except (ValueError, TypeError):
                if skip_invalid:
                    continue  # as Relay: a glob that does not parse matches nothing
                raise
            for segments in variants:
                sources = [source for source, _ in segments]
                if len(segments) <= 2 or (len(segments) == 3 and not sources[0] and not sources[2]):
                    # At most one run of stars, or "*x*": a regex cannot backtrack badly on these.
                    simple.append(".*".join(sources))
                else:
                    segmented.append(tuple((re.compile(source, re.DOTALL) if source else None, length)
                                           for source, length in segments))
        self.simple = re.compile("|".join(f"(?:{s})" for s in simple), re.DOTALL) if simple else None
        self.segmented = tuple(segmented)

    def __bool__(self) -> bool:
        return self.simple is not None or bool(self.segmented)

    def matches(self, text: Any) -> bool:
        """True if ``text`` is a non-empty string that some glob matches entirely, ignoring case."""
        if not isinstance(text, str) or not text:
            return False
        text = text.lower()
        if self.simple is not None and self.simple.fullmatch(text) is not None:
            return True
        return any(_segments_match(segments, text) for segments in self.segmented)


def _segments_match(segments: tuple[tuple[re.Pattern[str] | None, int], ...], text: str) -> bool:
    # Used for globs with two or more runs of stars. Every segment matches exactly its length, so
    # the leftmost place for each middle segment is always right: the classic linear glob match.
    (head, head_len), (tail, tail_len) = segments[0], segments[-1]
    start, stop = 0, len(text)
    if head is not None:
        if head.match(text) is None:
            return False
        start = head_len
    if tail is not None:
        stop -= tail_len
        if stop < start or tail.fullmatch(text, stop) is None:
            return False
    for segment, _ in segments[1:-1]:
        found = segment.search(text, start, stop)
        if found is None:
            return False
        start = found.end()
    return True


# --- fixed lists ---------------------------------------------------------------------------------------

def _lowercase_alternation(*parts: str) -> re.Pattern[str]:
    # Matched against lowercased text, like the globs. The parts use only lowercase escapes (\s \d \.).
    return re.compile("|".join(part.lower() for part in parts))


# Errors injected by browser extensions, matched anywhere in the first exception's value
# (EXTENSION_EXC_VALUES in relay-filter/src/browser_extensions.rs).
_EXTENSION_VALUES = _lowercase_alternation(*(part.replace(" ", r"\s") for part in (
    r"top\.GLOBALS", r"originalCreateNotification", r"canvas\.contentDocument", r"MyApp_RemoveAllHighlights",
    r"http://tt\.epicplay\.com", r"Can't find variable: ZiteReader", r"jigsaw is not defined",
    r"ComboSearch is not defined", r"http://loading\.retry\.widdit\.com/", r"atomicFindClose",
    r"fb_xd_fragment", r"bmi_SafeAddOnload", r"EBCallBackMessageReceived", r"_gCrWeb", r"conduitPage",
    r"null is not an object \(evaluating 'elt\.parentNode'\)", r"plugin\.setSuspendState is not a function",
    r"Extension context invalidated", r"webkit-masked-url:", r"can't access dead object",
)))
# Script sources of extensions and known-flaky third parties (EXTENSION_EXC_SOURCES).
_EXTENSION_SOURCES = _lowercase_alternation(
    r"graph\.facebook\.com", r"connect\.facebook\.net", r"eatdifferent\.com\.woopra-ns\.com",
    r"static\.woopra\.com/js/woopra\.js", r"^chrome(?:-extension)?://", r"^moz-extension://",
    r"^safari(?:-web)?-extension://", r"webkit-masked-url", r"127\.0\.0\.1:4001/isrunning",
    r"webappstoolbarba\.texthelp\.com/", r"metrics\.itunes\.apple\.com\.edgesuite\.net/", r"kaspersky-labs\.com",
)
# Frames without a real source, skipped when looking for the innermost one.
_ANONYMOUS_FRAMES = ("<anonymous>", "[native code]")

# Crawlers and uptime bots by User-Agent (WEB_CRAWLERS in relay-filter/src/web_crawlers.rs) ...
_CRAWLERS = _lowercase_alternation(
    r"Mediapartners-Google", r"AdsBot-Google", r"Googlebot", r"FeedFetcher-Google", r"Storebot-Google",
    r"BingBot", r"BingPreview", r"Baiduspider", r"Slurp", r"Sogou", r"facebook", r"meta-", r"ia_archiver",
    r"bots?(?:[/\s);]|$)", r"spider(?:[/\s);]|$)", r"Slack", r"Calypso\sAppCrawler", r"pingdom", r"lyticsbot",
    r"AWS\sSecurity\sScanner", r"HubSpot\sCrawler", r"Bytespider", r"Better\sUptime", r"Cloudflare-Healthchecks",
    r"GTmetrix", r"BrightEdgeOnCrawl", r"ELB-HealthChecker", r"naver\.me/spd", r"ClaudeBot", r"CCBot",
    r"OAI-SearchBot", r"GPTBot", r"PerplexityBot", r"Applebot", r"DuckDuckBot",
)
# ... except these, which act for a person (ALLOWED_WEB_CRAWLERS).
_ALLOWED_CRAWLERS = _lowercase_alternation(r"Slackbot\s1\.\d+", r"SentryUptimeBot", r"ChatGPT-User")

_LOCAL_IPS = ("127.0.0.1", "::1")
_LOCAL_DOMAINS = ("127.0.0.1", "localhost")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_HEADERS = ("user-agent", "x-forwarded-for", "host", "x-forwarded-host")


# --- user agents -----------------------------------------------------------------------------------

# Only for events without contexts.browser. Rules in uap-core's order for the families the legacy
# filter knows; anything it cannot place confidently is None, so an unsure parse never drops an event.
_NOT_A_PLAIN_BROWSER = _lowercase_alternation(
    r"bot\b", r"spider", r"crawl", r"Slurp", r"HeadlessChrome", r"Electron/", r"SamsungBrowser", r"YaBrowser",
    r"UCBrowser", r"Vivaldi", r"Silk/", r"Puffin", r"MiuiBrowser", r"QQBrowser", r"Whale/", r"Maxthon",
    r"coc_coc_browser", r"DuckDuckGo/", r"GSA/", r"FBA[NV]", r"Instagram", r"Line/", r"Snapchat", r"OculusBrowser",
    r"HuaweiBrowser", r"Yowser", r"Chromium/", r"PhantomJS")
_UA_RULES = tuple((re.compile(source), family) for source, family in (
    (r"Opera Mini/(\d+)", "Opera Mini"),
    (r"Opera Mobi.*Version/(\d+)", "Opera Mobile"),
    (r"Mobile Safari.*\bOPR/(\d+)", "Opera Mobile"),
    (r"\bOPR/(\d+)", "Opera"),
    (r"^Opera/\d+.*Version/(\d+)", "Opera"),
    (r"^Opera[/ ](\d+)", "Opera"),
    (r"\b(?:EdgA|EdgiOS)/(\d+)", "Edge Mobile"),
    (r"\bEdge?/(\d+)", "Edge"),
    (r"IEMobile[ /](\d+)", "IE Mobile"),
    (r"MSIE (\d+)", "IE"),
    (r"Trident/\d+.*\brv:(\d+)", "IE"),
    (r"FxiOS/(\d+)", "Firefox iOS"),
    (r"(?:Mobile|Tablet);.*Firefox/(\d+)", "Firefox Mobile"),
    (r"Firefox/(\d+)", "Firefox"),
    (r"CriOS/(\d+)", "Chrome Mobile iOS"),
    (r"; wv\).*\bChrome/(\d+)", "Chrome Mobile WebView"),
    (r"\bChrome/(\d+)[\d.]* Mobile", "Chrome Mobile"),
    (r"\bChrome/(\d+)", "Chrome"),
    (r"Android (\d+)[^)]*\).*Version/[\d.]+.*Safari/", "Android"),
    (r"(?:iPhone|iPad|iPod).*Version/(\d+)", "Mobile Safari"),
    (r"Version/(\d+)[\d.]* (?:Mobile/\S+ )?Safari/", "Safari"),
))
_MAJOR = re.compile(r"\d{1,9}")


@functools.lru_cache(maxsize=2048)
def _parse_user_agent(user_agent: str) -> tuple[str, int] | None:
    if _NOT_A_PLAIN_BROWSER.search(user_agent.lower()):
        return None
    for rule, family in _UA_RULES:
        found = rule.search(user_agent)
        if found is not None:
            return family, int(found.group(1)[:9])
    return None


def _browser(event: dict, user_agent: str) -> tuple[str, int] | None:
    browser = _get(_get(event, "contexts"), "browser")
    name, version = _get(browser, "name"), _get(browser, "version")
    if isinstance(name, str) and isinstance(version, str):
        major = _MAJOR.match(version)
        return (name, int(major.group())) if major else None
    return _parse_user_agent(user_agent[:1024])


# --- compiled settings -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Compiled:
    localhost: bool
    browser_extensions: bool
    web_crawlers: bool
    messages: _GlobSet
    releases: _GlobSet
    networks: tuple[tuple[int, int, frozenset[int]], ...]  # (IP version, bits to drop, network numbers)
    browsers: dict[str, tuple[tuple[int, int], ...]]
    health_checks: _GlobSet
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
    browsers: dict[str, list[tuple[int, int]]] = {}
    if "default" in settings.legacy_browsers:
        for family, minimum in _DEFAULT_MINIMUMS.items():
            browsers[family] = [(_LOWEST, minimum - 1)]
    else:
        for key in settings.legacy_browsers:
            if key in _LEGACY_RULES:
                family, lowest, highest = _LEGACY_RULES[key]
                browsers.setdefault(family, []).append((lowest, highest))
    messages = _GlobSet(settings.error_messages, skip_invalid=True)
    releases = _GlobSet(settings.releases, skip_invalid=True)
    health_checks = _GlobSet(HEALTH_CHECK_GLOBS if settings.health_checks else ())
    networks = tuple((version, shift, frozenset(numbers)) for (version, shift), numbers in by_prefix.items())
    return _Compiled(
        localhost=settings.localhost,
        browser_extensions=settings.browser_extensions,
        web_crawlers=settings.web_crawlers,
        messages=messages,
        releases=releases,
        networks=networks,
        browsers={family: tuple(ranges) for family, ranges in browsers.items()},
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
        if compiled.browsers and _is_legacy(compiled.browsers, event, user_agent):
            return LEGACY_BROWSERS
        if compiled.web_crawlers:
            lowered = user_agent.lower()
            if _CRAWLERS.search(lowered) and not _ALLOWED_CRAWLERS.search(lowered):
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


def _message_matches(globs: _GlobSet, event: dict) -> bool:
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


def _is_legacy(browsers: dict[str, tuple[tuple[int, int], ...]], event: dict, user_agent: str) -> bool:
    browser = _browser(event, user_agent)
    if browser is None:
        return False
    family, major = browser
    ranges = browsers.get("IE" if family == "IE Mobile" else family)
    return ranges is not None and any(lowest <= major <= highest for lowest, highest in ranges)
