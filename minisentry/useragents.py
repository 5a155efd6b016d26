"""User-agent checks for inbound filters: legacy browsers and web crawlers, as ``relay-filter`` has them.

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

:func:`legacy_ranges` turns configured keys into per-family version ranges once;
:func:`is_legacy_browser` checks one event against them. Web crawlers: :func:`is_crawler` matches a
``User-Agent`` against Relay's list of known crawlers and bots, minus the few that act for a person.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from .globs import lowercase_alternation

__all__ = ["LEGACY_BROWSER_KEYS", "BrowserRanges", "is_crawler", "is_legacy_browser", "legacy_ranges"]

#: Family -> the inclusive (lowest, highest) major versions that count as legacy.
BrowserRanges = dict[str, tuple[tuple[int, int], ...]]

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


def legacy_ranges(keys: tuple[str, ...]) -> BrowserRanges:
    """Return the legacy version ranges per browser family for ``legacy_browsers`` keys.

    ``default`` among the keys means only the default rules; unknown keys are skipped (config
    validation refuses them). Empty when no key applies. Pure CPU, never blocks, never raises for
    strings.
    """
    browsers: dict[str, list[tuple[int, int]]] = {}
    if "default" in keys:
        for family, minimum in _DEFAULT_MINIMUMS.items():
            browsers[family] = [(_LOWEST, minimum - 1)]
    else:
        for key in keys:
            if key in _LEGACY_RULES:
                family, lowest, highest = _LEGACY_RULES[key]
                browsers.setdefault(family, []).append((lowest, highest))
    return {family: tuple(ranges) for family, ranges in browsers.items()}


def is_legacy_browser(browsers: BrowserRanges, event: dict, user_agent: str) -> bool:
    """Return whether ``event``, sent with ``user_agent``, comes from a browser in ``browsers``' ranges.

    The browser is ``contexts.browser`` when the event has one, else parsed from ``user_agent``
    (unsure parses never count). Pure CPU (parses are cached), never blocks, never raises.
    """
    browser = _browser(event, user_agent)
    if browser is None:
        return False
    family, major = browser
    ranges = browsers.get("IE" if family == "IE Mobile" else family)
    return ranges is not None and any(lowest <= major <= highest for lowest, highest in ranges)


def is_crawler(user_agent: str) -> bool:
    """Return whether ``user_agent`` is a known web crawler or bot (not one acting for a person).

    Case-insensitive. Pure CPU, never blocks, never raises.
    """
    lowered = user_agent.lower()
    return _CRAWLERS.search(lowered) is not None and _ALLOWED_CRAWLERS.search(lowered) is None


# Crawlers and uptime bots by User-Agent (WEB_CRAWLERS in relay-filter/src/web_crawlers.rs) ...
_CRAWLERS = lowercase_alternation(
    r"Mediapartners-Google", r"AdsBot-Google", r"Googlebot", r"FeedFetcher-Google", r"Storebot-Google",
    r"BingBot", r"BingPreview", r"Baiduspider", r"Slurp", r"Sogou", r"facebook", r"meta-", r"ia_archiver",
    r"bots?(?:[/\s);]|$)", r"spider(?:[/\s);]|$)", r"Slack", r"Calypso\sAppCrawler", r"pingdom", r"lyticsbot",
    r"AWS\sSecurity\sScanner", r"HubSpot\sCrawler", r"Bytespider", r"Better\sUptime", r"Cloudflare-Healthchecks",
    r"GTmetrix", r"BrightEdgeOnCrawl", r"ELB-HealthChecker", r"naver\.me/spd", r"ClaudeBot", r"CCBot",
    r"OAI-SearchBot", r"GPTBot", r"PerplexityBot", r"Applebot", r"DuckDuckBot",
)
# ... except these, which act for a person (ALLOWED_WEB_CRAWLERS).
_ALLOWED_CRAWLERS = lowercase_alternation(r"Slackbot\s1\.\d+", r"SentryUptimeBot", r"ChatGPT-User")


# Only for events without contexts.browser. Rules in uap-core's order for the families the legacy
# filter knows; anything it cannot place confidently is None, so an unsure parse never drops an event.
_NOT_A_PLAIN_BROWSER = lowercase_alternation(
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


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None
