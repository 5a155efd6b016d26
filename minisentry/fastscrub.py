"""Sentry's *default* data scrubbing in pure Python, without Relay's engine.

What it reproduces: the event data that ``pii_strip_event`` leaves behind when run with
``convert_datascrubbing_config({"scrubData": True, "scrubDefaults": True, "scrubIpAddresses": ...,
"sensitiveFields": ..., "excludeFields": ...})`` on a *normalized* error event (the output of
``sentry_relay.StoreNormalizer``): the same ``[Filtered]`` / ``[creditcard]`` / ``[ip]`` ...
replacements and the same removed (``null``) values. That is:

- ``@common:filter`` (credit cards, IBANs, PEM key bodies, URL passwords, password-like keys and
  values, bearer tokens, ``token`` keys, US SSNs; ``@userpath:filter`` does not exist in Relay, so
  user paths stay) on every PII-bearing field, except ``$error.value``, frame ``filename`` /
  ``abs_path``, ``debug_meta``, ``logentry.formatted`` and the ``User-Agent`` header;
- the message rules on ``logentry.formatted`` (``[email]``, ``[creditcard]``, ``[iban]``,
  ``[us-ssn]``, ``Bearer [token]``);
- the session/CSRF cookie names, anywhere a ``cookies`` container holds them;
- with ``scrub_ip_addresses``: ``[ip]`` in strings, and ``user.ip_address``, ``request.env``'s
  ``REMOTE_ADDR`` and ``sdk.client_ip`` removed;
- ``sensitive_fields`` (Relay's ``strip-fields`` rule: a case-sensitive substring of the key, or of
  a string value) and ``safe_fields`` (a key, case-insensitive, or a dotted path suffix, that the
  rules above except the cookie rule skip).

Which fields carry PII (Relay's ``pii = "true" / "maybe"`` schema attributes), how pairs
(``[key, value]`` arrays, headers, cookies) take their key, and how one rule's redaction hides text
from the next (Relay's chunks) were taken from Relay's documented rules and checked by differential
tests against Relay itself (``tests/test_fastscrub.py``).

What it does not do: it writes no ``_meta`` (no remarks, no original lengths) and keeps an incoming
``_meta`` as it is, so only the scrubbed *values* equal Relay's. It does not scrub GraphQL
variables, spans, logs or any event shape it has not been checked on: for those (typed contexts
other than os/device/runtime/app/browser/gpu/culture/trace/response, spans, CSP reports and other
non-error payloads, unusual safe-field syntax, OTel cookie attributes) :func:`scrub_defaults`
raises :class:`Unsupported`, and the caller must use Relay. Advanced rules (``pii_config``) are
Relay's job too: ``minisentry.scrubbing`` falls back to ``sentry_relay.pii_strip_event`` for them.

Cost: one walk over the event, copying only the containers on the way to a changed value; only
strings in PII-bearing fields (and keys) are looked at, and the regexes run only on strings that
contain a character they need.
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["scrub_defaults", "Unsupported", "FILTERED"]

FILTERED = "[Filtered]"


class Unsupported(Exception):
    """This event (or setting) is outside what fastscrub reproduces; scrub it with Relay."""


# -- Relay's built-in patterns, in Python syntax ---------------------------------------------------
# Rust's \s is Unicode White_Space (no \x1c-\x1f, unlike Python's); [[:punct:]] is ASCII punctuation.
_WS = r"[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_NWS = _WS.replace("[", "[^", 1)
_PUNCT = r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]"""
_V4S = r"(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
_V4A = rf"{_V4S}\.{_V4S}\.{_V4S}\.{_V4S}"
_V6S = r"[0-9a-fA-F]{1,4}"

CREDITCARD = re.compile(rf"\b((?:3[47]\d|4\d{{3}}|5[1-5]\d\d|65\d\d|6011)([-{_WS[1:-1]}]?\d){{12}})\b")
IBAN = re.compile(
    r"\b(AT|AD|AE|AL|AZ|BA|BE|BG|BH|BR|BY|CH|CR|CY|CZ|DE|DK|DO|EE|EG|ES|FI|FO|FR|GB|GE|GI|GL|GR|GT|HR"
    r"|HU|IE|IL|IQ|IS|IT|JO|KW|KZ|LB|LC|LI|LT|LU|LV|LY|MC|MD|ME|MK|MR|MT|MU|NL|NO|PK|PL|PS|PT|QA|RO|RU"
    r"|RS|SA|SC|SE|SI|SK|SM|ST|SV|TL|TN|TR|UA|VA|VG|XK|DZ|AO|BJ|BF|BI|CV|CM|CF|TD|KM|CG|CI|DJ|GQ|GA|GW"
    r"|HN|IR|MG|ML|MA|MZ|NI|NE|SN|TG)\d{2}[a-zA-Z0-9]{11,29}\b")
PEMKEY = re.compile(r"(?:-----BEGIN[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----[\t ]*\r?\n?)(.+?)"
                    r"(?:\r?\n?-----END[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----)", re.S)
URLAUTH_LEGACY = re.compile(r"\b((?:[a-z0-9]+:)?//[a-zA-Z0-9%_.-]+:)([a-zA-Z0-9%_.-]+)@")
USSSN = re.compile(r"\b([0-9]{3}-[0-9]{2}-[0-9]{4})\b")
BEARER = re.compile(rf"(?i)\b(Bearer{_WS}+)({_NWS}+)")
TOKEN_KEY = re.compile(r"(?i)token")
PASSWORD_KEY = re.compile(r"(?i)(password|secret|passwd|api[-_]key|apikey|auth|credentials|mysql_pwd|"
                          rf"privatekey|private[-_]key|token{_NWS}*[:=]|^otp$|^two[-_]factor$)")
EMAIL = re.compile(r"\b[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}\b")
IPV4 = re.compile(rf"\b{_V4A}\b")
IPV6 = re.compile(
    rf"(?i)(?:{_WS}|{_PUNCT}|^)("
    rf"({_V6S}:){{7}}{_V6S}|({_V6S}:){{1,7}}:|({_V6S}:){{1,6}}::{_V6S}|({_V6S}:){{1,5}}:(:{_V6S}){{1,2}}|"
    rf"({_V6S}:){{1,4}}:(:{_V6S}){{1,3}}|({_V6S}:){{1,3}}:(:{_V6S}){{1,4}}|({_V6S}:){{1,2}}:(:{_V6S}){{1,5}}|"
    rf"{_V6S}:((:{_V6S}){{1,6}})|:((:{_V6S}){{1,7}}|:)|fe80:(:{_V6S}){{0,4}}%[0-9a-zA-Z]{{1,}}"
    rf"::(ffff(:0{{1,4}}){{0,1}}:){{0,1}}{_V4A}|({_V6S}:){{1,4}}:{_V4A})({_WS}|{_PUNCT}|$)")

#: Session and CSRF cookie names Relay's conversion filters wherever ``*.cookies.<name>`` matches.
SENSITIVE_COOKIES = frozenset((
    "sentrysid", "sudo", "su", "session", "__session", "sessionid", "user_session", "symfony",
    "phpsessid", "fasthttpsessionid", "mysession", "irissessionid", "_vercel_jwt", "csrf", "xsrf",
    "_xsrf", "_csrf", "csrf-token", "csrf_token", "xsrf-token", "xsrf_token", "fastcsrf", "_iris_csrf"))
_OTEL_COOKIE_KEYS = ("http.request.header.cookie", "http.response.header.set-cookie")

# A string no @common:filter / ip rule can change: none of the characters their matches need.
_MAYBE_VALUE = re.compile(r"\d\d|\d\.|-----|@|:|(?i:bearer|password|secret|passwd|api|auth|credential|mysql_pwd"
                          r"|private|token|otp|two)")
_MAYBE_FORMATTED = re.compile(r"\d|@|(?i:bearer)")


def _scoped(regex: re.Pattern) -> str:
    pattern = regex.pattern
    if pattern.startswith("(?i)"):
        return f"(?i:{pattern[4:]})"
    return f"(?s:{pattern})" if regex.flags & re.S else f"(?:{pattern})"


# Exact gates: a string none of a selector's value patterns matches is left as it is (a later rule
# only runs on text an earlier one changed), so one search decides most strings.
_COMMON_GATE = re.compile("|".join(_scoped(r) for r in (BEARER, CREDITCARD, IBAN, PASSWORD_KEY, PEMKEY,
                                                        URLAUTH_LEGACY, USSSN)))
_COMMON_IP_GATE = re.compile(f"{_COMMON_GATE.pattern}|{_scoped(IPV4)}|{_scoped(IPV6)}")
_NOOP_STRINGS = frozenset(("", "true", "false", "null", "undefined"))
_VALUE = None  # replace behaviour: the whole value


class _Chunks:
    """Relay's chunked string: text and redactions; later rules see a redaction as one NUL."""

    __slots__ = ("parts",)

    def __init__(self, text: str) -> None:
        self.parts: list[tuple[bool, str]] = [(False, text)]

    def apply(self, regex: re.Pattern, groups: tuple[int, ...] | None, replacement: str) -> bool:
        parts = self.parts
        if len(parts) == 1 and not parts[0][0]:
            search = parts[0][1]
            if "\x00" in search:
                search = search.replace("\x00", "")
        else:
            if all(red for red, _ in parts):
                return False
            search = "".join("\x00" if red else text.replace("\x00", "") for red, text in parts)
        matches = []
        last_end = -1
        for match in regex.finditer(search):
            start, end = match.span()
            # Rust's iterator reports no empty match where the previous match ended.
            if start == end == last_end:
                continue
            matches.append(match)
            last_end = end
        if not matches:
            return False
        if groups is _VALUE:
            self.parts = [(True, replacement)]
            return True
        pending = [text for red, text in parts if red]
        pending.reverse()
        out: list[tuple[bool, str]] = []

        def text_part(text: str) -> None:
            if not text:
                return
            pieces = text.split("\x00")
            for piece in pieces[:-1]:
                out.append((False, piece))
                out.append((True, pending.pop()))
            out.append((False, pieces[-1]))

        pos = 0
        for match in matches:
            for index in groups:
                start, end = match.span(index)
                if start >= 0:
                    text_part(search[pos:start])
                    out.append((True, replacement))
                    pos = end
        text_part(search[pos:])
        self.parts = out
        return True

    def value(self) -> str:
        return "".join(text for _, text in self.parts)


class _Config:
    """One compiled configuration (cached per distinct settings)."""

    def __init__(self, scrub_ip: bool, sensitive: tuple[str, ...], safe: tuple[str, ...]) -> None:
        self.scrub_ip = scrub_ip
        self.sensitive = re.compile("|".join(re.escape(f) for f in sensitive)) if sensitive else None
        self.safe_keys: frozenset[str] = frozenset()
        self.safe_paths: list[tuple[str, ...]] = []
        keys = set()
        for name in safe:
            if not re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*|[A-Za-z0-9_\- ]+", name):
                raise Unsupported(f"safe field {name!r}: selector syntax not reproduced")
            parts = tuple(part.lower() for part in (name.split(".") if " " not in name else [name]))
            if len(parts) == 1:
                keys.add(parts[0])
            else:
                self.safe_paths.append(parts)
        self.safe_keys = frozenset(keys)

    # -- per-node rule checks -----------------------------------------------------------------

    def is_safe(self, path: tuple) -> bool:
        if not path:
            return False
        last = path[-1]
        if isinstance(last, str) and last.lower() in self.safe_keys:
            return True
        for parts in self.safe_paths:
            n = len(parts)
            if len(path) >= n and all(isinstance(p, str) and p.lower() == q for p, q in zip(path[-n:], parts)):
                return True
        return False

    def key_removes(self, key: str | None) -> bool:
        """True if a key rule deletes a non-string value stored under ``key``."""
        if key is None:
            return False
        if PASSWORD_KEY.search(key) or TOKEN_KEY.search(key):
            return True
        return bool(self.sensitive is not None and self.sensitive.search(key))

    def scrub_string(self, value: str, key: str | None, cookie: bool = False) -> str:
        """Apply @common:filter (+ strip-fields, + @ip:replace) to a PII string at ``key``."""
        k = key or ""
        key_hit = bool(k) and (PASSWORD_KEY.search(k) or TOKEN_KEY.search(k)
                               or (self.sensitive is not None and self.sensitive.search(k)))
        gate = _COMMON_IP_GATE if self.scrub_ip else _COMMON_GATE
        if not key_hit and not cookie and not gate.search(value) and (
                self.sensitive is None or not self.sensitive.search(value)):
            return value
        # Relay runs a selector's rules sorted by rule id: @bearer, @creditcard, @iban, @ip,
        # @password, @pemkey, @urlauth, @usssn, then strip-fields. Order matters: a redaction
        # hides its text from every later rule.
        chunks = _Chunks(value)
        chunks.apply(BEARER, (0,), FILTERED)
        chunks.apply(CREDITCARD, (0,), FILTERED)
        chunks.apply(IBAN, (0,), FILTERED)
        if self.scrub_ip:
            chunks.apply(IPV4, (0,), "[ip]")
            chunks.apply(IPV6, (1,), "[ip]")
        if TOKEN_KEY.search(k):
            chunks.apply(_ANYTHING, _VALUE, FILTERED)
        if PASSWORD_KEY.search(k):
            chunks.apply(_ANYTHING, _VALUE, FILTERED)
        else:
            chunks.apply(PASSWORD_KEY, _VALUE, FILTERED)
        chunks.apply(PEMKEY, (1,), FILTERED)
        chunks.apply(URLAUTH_LEGACY, (2,), FILTERED)
        chunks.apply(USSSN, (0,), FILTERED)
        if self.sensitive is not None:
            if self.sensitive.search(k):
                chunks.apply(_ANYTHING, _VALUE, FILTERED)
            else:
                chunks.apply(self.sensitive, _VALUE, FILTERED)
        if cookie:  # the cookie selector's @anything:filter runs after the defaults
            chunks.apply(_ANYTHING, (0,), FILTERED)
        return chunks.value()

    def changes_string(self, value: str, key: str | None) -> bool:
        return self.scrub_string(value, key) != value


_ANYTHING = re.compile(r"[^\n]*")


def _formatted(value: str) -> str:
    """The message rules on ``logentry.formatted``."""
    if value in _NOOP_STRINGS or not _MAYBE_FORMATTED.search(value):
        return value
    chunks = _Chunks(value)  # sorted by rule id, as Relay runs them
    chunks.apply(BEARER, (0,), "Bearer [token]")
    chunks.apply(CREDITCARD, (0,), "[creditcard]")
    chunks.apply(EMAIL, (0,), "[email]")
    chunks.apply(IBAN, (0,), "[iban]")
    chunks.apply(USSSN, (0,), "[us-ssn]")
    return chunks.value()


# -- walking the event -----------------------------------------------------------------------------
# ``pii`` is True for PII fields (every rule) and False for fields only the specific (cookie)
# selectors reach; fields Relay never scrubs are not walked at all.

class _Walker:
    def __init__(self, config: _Config) -> None:
        self.c = config

    def value(self, v: Any, path: tuple, pii: bool) -> Any:
        """Return ``v`` scrubbed (the same object if nothing changed)."""
        c = self.c
        key = path[-1] if path and isinstance(path[-1], str) else None
        if key is not None and key.lower() in _OTEL_COOKIE_KEYS:
            raise Unsupported(f"OTel cookie attribute {key!r}")
        cookie = (key is not None and len(path) >= 3 and isinstance(path[-2], str)
                  and path[-2].lower() == "cookies" and key.lower() in SENSITIVE_COOKIES)
        common = pii and not c.is_safe(path)
        if v is None or v is True or v is False:
            return v
        if isinstance(v, str):
            if v in _NOOP_STRINGS:
                return v
            if common:
                return c.scrub_string(v, key, cookie)
            if cookie:  # @anything:filter replaces each line (Rust's ".*")
                chunks = _Chunks(v)
                chunks.apply(_ANYTHING, (0,), FILTERED)
                return chunks.value()
            return v
        # numbers and containers: only rules on the key (or @anything) apply; they remove.
        if cookie or (common and c.key_removes(key)):
            return None
        if isinstance(v, dict):
            out = None
            for k, item in v.items():
                new = self.value(item, path + (k,), pii)
                if new is not item or (new is None and item is not None):
                    if out is None:
                        out = dict(v)
                    out[k] = new
            return v if out is None else out
        if isinstance(v, list):
            return self.array(v, path, pii)
        return v

    def array(self, v: list, path: tuple, pii: bool) -> list:
        if v and all(type(item) is list and len(item) == 2 and isinstance(item[0], str) for item in v):
            # Relay reads an array made only of [string, value] pairs as a pair list: each value
            # is scrubbed under its pair's key (so key rules apply) and the keys are left alone.
            return self.pairs(v, path, pii=pii)
        out = None
        for i, item in enumerate(v):
            new = self.value(item, path + (str(i),), pii)
            if new is not item:
                if out is None:
                    out = list(v)
                out[i] = new
        return v if out is None else out

    def pairs(self, v: Any, path: tuple, *, skip_user_agent: bool = False, pii: bool = True) -> Any:
        """A PairList (headers, cookies, query string): each value takes its pair's key."""
        if not isinstance(v, list):
            return self.value(v, path, pii)
        out = None
        for i, pair in enumerate(v):
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                new = self.value(pair, path + (str(i),), pii)
            else:
                key, item = pair
                if skip_user_agent and key.lower() == "user-agent":
                    # $http.headers.user-agent is excluded from the defaults (not from cookies).
                    new_item = item
                else:
                    new_item = self.value(item, path + (key,), pii)
                new = pair if new_item is item else [key, new_item]
            if new is not pair:
                if out is None:
                    out = list(v)
                out[i] = new
        return v if out is None else out

    # -- typed parts of an event ----------------------------------------------------------------

    def frames(self, stacktrace: Any, path: tuple) -> Any:
        if not isinstance(stacktrace, dict):
            return stacktrace
        frames = stacktrace.get("frames")
        if not isinstance(frames, list):
            return stacktrace
        out = None
        for i, frame in enumerate(frames):
            if isinstance(frame, dict) and "vars" in frame:
                new_vars = self.value(frame["vars"], path + ("frames", str(i), "vars"), True)
                if new_vars is not frame["vars"]:
                    if out is None:
                        out = list(frames)
                    out[i] = {**frame, "vars": new_vars}
        return stacktrace if out is None else {**stacktrace, "frames": out}


_NO_PII = frozenset((
    "event_id", "level", "version", "type", "fingerprint", "culprit", "transaction", "transaction_info",
    "time_spent", "logger", "modules", "platform", "timestamp", "start_timestamp", "received",
    "release", "dist", "environment", "tags", "debug_meta", "ingest_path", "errors", "key_id",
    "project", "grouping_config", "checksum", "_meta", "_metrics", "scraping_attempts"))
_MAYBE_CONTEXTS = frozenset(("os", "device", "runtime", "app", "browser", "gpu", "culture"))
_OTHER_TYPED_CONTEXTS = frozenset((
    "replay", "monitor", "spring", "flags", "feedback", "memory_info", "threadpool_info", "unity",
    "otel", "reprocessing", "profile"))


def _set(out: dict | None, event: dict, key: str, new: Any, old: Any) -> dict | None:
    if new is old:
        return out
    if out is None:
        out = dict(event)
    out[key] = new
    return out


def _scrub(config: _Config, event: dict) -> dict:
    w = _Walker(config)
    out: dict | None = None
    for key, v in event.items():
        if key in _NO_PII or v is None:
            continue
        if key == "extra":
            new = w.value(v, ("extra",), True)
        elif key == "user":
            new = _user(w, v)
        elif key == "request":
            new = _request(w, v)
        elif key == "contexts":
            new = _contexts(w, v)
        elif key == "breadcrumbs":
            new = _values(v, lambda crumb, p: _fields(w, crumb, p, ("message", "data")), ("breadcrumbs",))
        elif key == "exception":
            new = _values(v, lambda exc, p: _exception(w, exc, p), ("exception",))
        elif key == "threads":
            new = _values(v, lambda t, p: _stacktraces(w, t, p), ("threads",))
        elif key == "stacktrace":
            new = w.frames(v, ("stacktrace",))
        elif key == "logentry":
            new = _logentry(w, v)
        elif key == "template":
            new = _fields(w, v, ("template",), ("filename", "abs_path"))
        elif key == "sdk":
            new = v
            if config.scrub_ip and isinstance(v, dict) and _removable(v.get("client_ip")):
                new = {**v, "client_ip": None}
        else:
            raise Unsupported(f"event field {key!r} is not reproduced")
        out = _set(out, event, key, new, v)
    return event if out is None else out


def _removable(value: Any) -> bool:
    # @anything:remove; Relay skips booleans, nulls and the strings "", "true", "null", ...
    return value is not None and not isinstance(value, bool) and value not in _NOOP_STRINGS


def _fields(w: _Walker, obj: Any, path: tuple, names: tuple[str, ...]) -> Any:
    if not isinstance(obj, dict):
        return obj
    out = None
    for name in names:
        if name in obj:
            out = _set(out, obj, name, w.value(obj[name], path + (name,), True), obj[name])
    return obj if out is None else out


def _values(container: Any, each, path: tuple) -> Any:
    if not isinstance(container, dict) or not isinstance(container.get("values"), list):
        return container
    items = container["values"]
    out = None
    for i, item in enumerate(items):
        new = each(item, path + ("values", str(i))) if item is not None else item
        if new is not item:
            if out is None:
                out = list(items)
            out[i] = new
    return container if out is None else {**container, "values": out}


def _stacktraces(w: _Walker, obj: Any, path: tuple) -> Any:
    if not isinstance(obj, dict):
        return obj
    out = None
    for name in ("stacktrace", "raw_stacktrace"):
        if obj.get(name) is not None:
            out = _set(out, obj, name, w.frames(obj[name], path + (name,)), obj[name])
    return obj if out is None else out


def _exception(w: _Walker, exc: Any, path: tuple) -> Any:
    new = _stacktraces(w, exc, path)
    mechanism = exc.get("mechanism") if isinstance(exc, dict) else None
    if isinstance(mechanism, dict):
        new_mech = _fields(w, mechanism, path + ("mechanism",), ("description", "data"))
        if new_mech is not mechanism:
            new = {**new, "mechanism": new_mech}
    return new


def _logentry(w: _Walker, logentry: Any) -> Any:
    if not isinstance(logentry, dict):
        return logentry
    new = _fields(w, logentry, ("logentry",), ("params",))
    formatted = logentry.get("formatted")
    if isinstance(formatted, str):
        scrubbed = _formatted(formatted)
        if scrubbed != formatted:
            new = {**new, "formatted": scrubbed}
    return new


def _user(w: _Walker, user: Any) -> Any:
    if not isinstance(user, dict):
        return user
    new = _fields(w, user, ("user",), ("id", "email", "username", "name", "sentry_user", "geo", "data",
                                       "ip_address"))
    if w.c.scrub_ip and _removable(new.get("ip_address")):
        new = {**new, "ip_address": None}
    return new


def _request(w: _Walker, request: Any) -> Any:
    if not isinstance(request, dict):
        return request
    out = None
    for name in ("data", "fragment", "env"):
        if name in request:
            out = _set(out, request, name, w.value(request[name], ("request", name), True), request[name])
    for name in ("query_string", "cookies", "headers"):
        if name in request:
            new = w.pairs(request[name], ("request", name), skip_user_agent=name == "headers")
            out = _set(out, request, name, new, request[name])
    if w.c.scrub_ip and isinstance(request.get("env"), dict):
        env = (out or request)["env"]
        if any(k.lower() == "remote_addr" and _removable(val) for k, val in env.items()):
            env = {k: (None if k.lower() == "remote_addr" and _removable(val) else val) for k, val in env.items()}
            out = _set(out, request, "env", env, None)
    return request if out is None else out


def _contexts(w: _Walker, contexts: Any) -> Any:
    if not isinstance(contexts, dict):
        return contexts
    out = None
    for name, ctx in contexts.items():
        if not isinstance(ctx, dict):
            new = w.value(ctx, ("contexts", name), True)
        else:
            ty = ctx.get("type", name)
            path = ("contexts", name)
            if ty in _OTHER_TYPED_CONTEXTS:
                raise Unsupported(f"typed context {ty!r} is not reproduced")
            if ty in _MAYBE_CONTEXTS or ty in ("trace", "response"):
                pii_fields = {"trace": ("data",), "response": ("data", "headers", "cookies")}.get(ty, ())
                new = None
                for k, item in ctx.items():
                    if k in pii_fields:
                        n = (w.pairs(item, path + (k,)) if k in ("headers", "cookies")
                             else w.value(item, path + (k,), True))
                    else:
                        n = w.value(item, path + (k,), False)
                    new = _set(new, ctx, k, n, item)
                new = ctx if new is None else new
            else:
                new = w.value(ctx, path, True)
        out = _set(out, contexts, name, new, ctx)
    return contexts if out is None else out


@functools.lru_cache(maxsize=256)
def _config(scrub_ip: bool, sensitive: tuple[str, ...], safe: tuple[str, ...]) -> _Config:
    return _Config(scrub_ip, sensitive, safe)


def scrub_defaults(event: dict, *, scrub_ip_addresses: bool = False, sensitive_fields=(),
                   safe_fields=()) -> dict:
    """Return ``event`` scrubbed as Sentry's default rules would (values only, no ``_meta``).

    ``event`` must be a normalized error event; it is not modified (changed containers are
    copied, the rest is shared). Pure CPU, no blocking. Raises :class:`Unsupported` for a shape or
    setting this module does not reproduce: scrub that event with Relay instead.
    """
    if not isinstance(event, dict):
        raise Unsupported("not an event object")
    config = _config(bool(scrub_ip_addresses), tuple(sensitive_fields), tuple(safe_fields))
    return _scrub(config, event)
