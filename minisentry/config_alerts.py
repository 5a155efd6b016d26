"""``[alerts]``: rules that send new issues, regressions and failed cron check-ins to targets.

Kept apart from ``config.py`` like ``config_sourcemaps.py``. Scalar keys and unknown keys are checked
by config.py's generic builder (passed in as ``build``); this module checks what the types cannot
say: rule names, alert kinds, levels, and each built-in target's keys. A target of a type no built-in
channel has is accepted here (only its ``type`` is checked) and validated at startup by the plugin
channel that registered the type (``alerts.check_targets``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = ["AlertsConfig", "AlertRule", "SmtpConfig", "alerts_from_mapping", "check_url_syntax",
           "validate_builtin_target", "ALERT_KINDS", "LEVELS", "BUILTIN_TARGET_TYPES"]

#: What a rule's ``on`` may name.
ALERT_KINDS = ("new_issue", "regression", "unignored", "monitor_failed")
#: Event levels, least severe first (``min_level`` keeps this level and those after it).
LEVELS = ("debug", "info", "warning", "error", "fatal")
BUILTIN_TARGET_TYPES = ("webhook", "slack", "email")
_TYPE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_EMAIL_RE = re.compile(r"[^@\s,;<>\"]{1,64}@[^@\s,;<>\"]{1,255}")
_HEADER_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")


@dataclass(frozen=True, kw_only=True)
class SmtpConfig:
    """``[alerts.smtp]``: the mail server email targets are sent through."""

    host: str = ""
    #: 0: the usual port for ``security`` (25 for none, 587 for starttls, 465 for ssl).
    port: int = 0
    #: ``"starttls"``, ``"ssl"`` (implicit TLS) or ``"none"`` (plain text; only for a local relay).
    security: str = "starttls"
    username: str = ""
    password: str = ""
    from_address: str = "minisentry@localhost"


@dataclass(frozen=True, kw_only=True)
class AlertRule:
    """``[[alerts.rules]]``: which alerts go where, at most ``max_per_hour`` of them."""

    name: str
    on: list[str]
    targets: list[dict[str, Any]]
    #: Project slugs; empty: every project.
    projects: list[str] = field(default_factory=list)
    #: Issues below this level do not alert (``""``: any level). Monitor failures have no level.
    min_level: str = ""
    max_per_hour: int = 30


@dataclass(frozen=True, kw_only=True)
class AlertsConfig:
    """``[alerts]``: the alert worker's settings and its rules."""

    enabled: bool = True
    #: Seconds between reads of the issue activity and monitor-failure logs.
    poll_interval: float = 1.0
    #: Let webhooks reach loopback, private, link-local and other non-public addresses.
    allow_private_addresses: bool = False
    #: Seconds one delivery attempt may take (connect, send, answer).
    timeout: float = 10.0
    #: Deliveries running at once.
    concurrency: int = 4
    #: Log rows read ahead of the deliveries finishing (and deliveries queued); the reader waits past it.
    max_queue: int = 100
    #: Attempts after the first for a retryable failure (connection error, timeout, 5xx, 429).
    max_retries: int = 3
    retry_initial: float = 1.0
    retry_max: float = 30.0
    #: Log rows older than this many seconds are skipped (not alerted) when the worker reaches them.
    max_age: float = 3600.0
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    rules: tuple[AlertRule, ...] = ()


def alerts_from_mapping(raw: Any, label: str, build: Callable[[type, Any, str, str], Any]) -> AlertsConfig:
    """Build and validate ``[alerts]`` from its parsed TOML table. Never blocks.

    ``build(cls, raw, where, label)`` is config.py's dataclass builder (unknown keys, types, env
    secrets). Raises ConfigError naming the offending key, and nothing else for any input.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: 'alerts' must be a table")
    rest = {key: value for key, value in raw.items() if key not in ("smtp", "rules")}
    alerts = build(AlertsConfig, rest, "alerts", label)
    smtp = build(SmtpConfig, raw.get("smtp", {}), "alerts.smtp", label)
    rules_raw = raw.get("rules", [])
    if not isinstance(rules_raw, list):
        raise ConfigError(f"{label}: 'alerts.rules' must be an array of tables ([[alerts.rules]])")
    rules = tuple(build(AlertRule, item, f"alerts.rules[{index}]", label) for index, item in enumerate(rules_raw))
    alerts = dataclasses.replace(alerts, smtp=smtp, rules=rules)
    _validate(alerts, label)
    return alerts


def _validate(alerts: AlertsConfig, label: str) -> None:
    for name in ("poll_interval", "timeout", "concurrency", "max_queue", "retry_initial", "retry_max", "max_age"):
        if getattr(alerts, name) <= 0:
            raise ConfigError(f"{label}: alerts.{name} must be greater than 0, got {getattr(alerts, name)!r}")
    if not 0 <= alerts.max_retries <= 20:
        raise ConfigError(f"{label}: alerts.max_retries must be 0..20, got {alerts.max_retries}")
    if alerts.concurrency > 256 or alerts.max_queue > 100_000:
        raise ConfigError(f"{label}: alerts.concurrency must be at most 256 and alerts.max_queue at most 100000")
    smtp = alerts.smtp
    if smtp.security not in ("starttls", "ssl", "none"):
        raise ConfigError(f"{label}: alerts.smtp.security must be 'starttls', 'ssl' or 'none', got {smtp.security!r}")
    if not 0 <= smtp.port <= 65535:
        raise ConfigError(f"{label}: alerts.smtp.port must be 0..65535, got {smtp.port}")
    if not _EMAIL_RE.fullmatch(smtp.from_address):
        raise ConfigError(f"{label}: alerts.smtp.from_address is not an email address: {smtp.from_address!r}")
    seen: set[str] = set()
    for index, rule in enumerate(alerts.rules):
        where = f"alerts.rules[{index}]"
        if not rule.name.strip() or rule.name in seen:
            raise ConfigError(f"{label}: {where}.name must be a unique, non-empty name, got {rule.name!r}")
        seen.add(rule.name)
        if not rule.on or any(kind not in ALERT_KINDS for kind in rule.on):
            raise ConfigError(f"{label}: {where}.on must list some of {', '.join(ALERT_KINDS)}, got {rule.on!r}")
        if rule.min_level and rule.min_level not in LEVELS:
            raise ConfigError(f"{label}: {where}.min_level must be one of {', '.join(LEVELS)}, got {rule.min_level!r}")
        if rule.max_per_hour < 1:
            raise ConfigError(f"{label}: {where}.max_per_hour must be at least 1, got {rule.max_per_hour}")
        if not rule.targets:
            raise ConfigError(f"{label}: {where}.targets must name at least one target")
        for number, target in enumerate(rule.targets):
            try:
                _check_target(target, alerts.smtp)
            except ValueError as exc:
                raise ConfigError(f"{label}: {where}.targets[{number}]{exc}") from exc


def _check_target(target: dict[str, Any], smtp: SmtpConfig) -> None:
    kind = target.get("type")
    if not isinstance(kind, str) or not _TYPE_RE.fullmatch(kind):
        raise ValueError(f".type must be a target type such as {', '.join(BUILTIN_TARGET_TYPES)}, got {kind!r}")
    if kind in BUILTIN_TARGET_TYPES:
        validate_builtin_target(target)
    if kind == "email" and not smtp.host:
        raise ValueError(": an email target needs [alerts.smtp] host")


def validate_builtin_target(target: dict[str, Any]) -> None:
    """Check a webhook, slack or email target's keys. Raises ValueError (``.key: why``)."""
    kind = target["type"]
    allowed = {"webhook": {"type", "url", "headers"}, "slack": {"type", "url"}, "email": {"type", "to"}}[kind]
    for key in target:
        if key not in allowed:
            raise ValueError(f": unknown key '{key}' for a {kind} target (keys: {', '.join(sorted(allowed))})")
    if kind == "email":
        to = target.get("to")
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and _EMAIL_RE.fullmatch(a) for a in to):
            raise ValueError(f".to must be a non-empty list of email addresses, got {to!r}")
        return
    url = target.get("url")
    if not isinstance(url, str):
        raise ValueError(f".url must be a string, got {url!r}")
    problem = check_url_syntax(url)
    if problem:
        raise ValueError(f".url: {problem}")
    headers = target.get("headers", {})
    if not isinstance(headers, dict) or not all(
            isinstance(v, str) and _HEADER_RE.fullmatch(k) and "\r" not in v and "\n" not in v
            for k, v in headers.items()):
        raise ValueError(".headers must be a table of header names to single-line strings")


def check_url_syntax(url: str) -> str | None:
    """Return why ``url`` cannot be a webhook URL (scheme, host, credentials), or None. Never raises."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"not a valid URL: {url[:200]!r}"
    if parts.scheme not in ("http", "https"):
        return f"only http and https URLs are sent to, not {url[:200]!r}"
    if not parts.hostname:
        return f"the URL has no host: {url[:200]!r}"
    try:
        # The host travels in the Host header and TLS server name: it must have an ASCII (IDNA) form.
        parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return f"the URL's host is not a valid host name: {parts.hostname[:100]!r}"
    if parts.username is not None or parts.password is not None:
        return "URLs with credentials are refused (put a token in the path or in headers)"
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        return "the URL contains spaces or control characters"
    return None
