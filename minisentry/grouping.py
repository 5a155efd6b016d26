"""Issue grouping: the hash, title, culprit and metadata Sentry gives one normalized event.

Follows Sentry's default config, ``newstyle:2023-01-11``. The first strategy that contributes wins:
chained exception > threads > stack trace > message. A frame contributes its module (else its
filename's lower-cased basename), function and, on javascript/node/python/php/ruby, its context
line (whitespace collapsed; not if over 120 chars); a repeat of the previous frame (recursion)
contributes nothing. Each exception contributes its stack trace, its type (unless synthetic) and,
only if the stack trace contributes nothing, its parameterized value. Variant "app" uses in-app
frames, "system" all: the hash is app's if an in-app frame contributes, else system's if a frame
does, else app's types and values. A message groups by its ``logentry.message`` template, else
``logentry.formatted``, cut to two lines with numbers, hashes, ids, IPs, dates, e-mails and URLs
replaced by placeholders. With nothing to group by, the hash is Sentry's fallback ``md5(b"")``:
one catch-all issue per project. An SDK ``fingerprint`` overrides all this ("custom-fingerprint")
or, holding ``{{ default }}`` and other values, gets the default values spliced in ("salted").
The hash is the md5 of the contributing values' UTF-8, concatenated (Sentry's ``hash_from_values``).

Not done: stack-trace rules (the SDK's ``in_app`` is trusted), exception-group filtering, NSError
codes, native symbol trimming, server-side fingerprint rules, templates and security reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from hashlib import md5

__all__ = ["Grouping", "compute_grouping"]


@dataclass(frozen=True, slots=True)
class Grouping:
    """How one event groups: its issue hash, and the title, culprit and metadata of that issue."""

    hash: str  # 32 lowercase hex digits: the identity
    title: str  # "Type: first line of value", or the message's first line; at most 200 chars
    culprit: str  # the transaction, else "<module or filename> in <function>" of the crash frame
    metadata: dict  # Sentry's issue metadata: type/value/filename/function, or title
    variant: str  # what the hash came from: app, system, message, fallback, salted, custom-...


_JS = frozenset(("javascript", "node"))
_NATIVE = frozenset(("objc", "cocoa", "swift", "native", "c"))
_CONTEXT_LINE_PLATFORMS = frozenset(("javascript", "node", "python", "php", "ruby"))
# A frame equal to the one before in all these is recursion. Likeliest to differ comes first;
# _NO_FRAME, the one "before" the first frame, differs from every frame.
_RECURSION_KEYS = ("lineno", "function", "module", "filename", "abs_path", "package", "colno")
_NO_FRAME = {"lineno": object()}
_JS_JUNK_PATHS = frozenset(("[native code]", "native code", "eval code", "<anonymous>"))
_JS_ANON_FUNCS = frozenset(("?", "<anonymous function>", "<anonymous>", "Anonymous function"))
_BASENAME_RE = re.compile(r"[/\\]")
_RUBY_ERB_RE = re.compile(r"__\d{4,}_\d{4,}$")
_FINGERPRINT_VAR_RE = re.compile(r"\{\{\s*(\S+?)\s*\}\}")
_DAY = r"(?:Sun|Mon|Tue|Wed|Thu|Fri|Sat)"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_X = r"[0-9a-fA-F]"
_H4 = _X + r"{1,4}"
# Event-specific values hidden before messages are grouped. Alternatives are tried in order, so
# specific shapes (e-mail, uuid, hashes, dates) must come before the generic numbers.
_PARAMETER_RE = re.compile(
    rf"""(?x)
    (?P<email>[a-zA-Z0-9.!\#$%&'*+/=?^_`{{|}}~-]+@[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*)
    | (?P<url>\b(?:wss?|https?|ftp)://[^\s/$.?\#].[^\s]*)
    | (?P<ip>\b(?:{_H4}:){{7}}{_H4}\b | \b(?:{_H4}:){{1,7}}:(?:{_H4}(?::{_H4}){{0,5}})?(?![\w:])
        | ::(?:{_H4}(?::{_H4}){{0,6}})?(?![\w:]) | \b(?:{_OCTET}\.){{3}}{_OCTET}\b)
    | (?P<uuid>\b{_X}{{8}}-{_X}{{4}}-{_X}{{4}}-{_X}{{4}}-{_X}{{12}}\b)
    | (?P<sha1>\b{_X}{{40}}\b)
    | (?P<md5>\b{_X}{{32}}\b)
    | (?P<date>\d{{4}}-[01]\d-[0-3]\d[T\ ][0-2]\d:[0-5]\d(?::[0-5]\d(?:\.\d+)?)?
          (?:[+-][0-2]\d:?[0-5]\d|Z)?
        | \b(?:{_DAY},?\s+)?{_MONTH}\s+\d{{1,2}}\s+\d\d:\d\d:\d\d\s+\d{{4}}
        | datetime\.datetime\(.*?\))
    | (?P<hex>\b0[xX]{_X}+\b)
    | (?P<float>-?\b\d+\.\d+\b)
    | (?P<int>-\d+\b|\b\d+\b)
    | (?P<quoted_str>='[\w\s]+')
    """
)


def _get(obj: object, key: str, kind: type = str):
    """``obj[key]`` if ``obj`` is a dict and that is a ``kind``; else None, or an empty ``kind``."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, kind) else None if kind is str else kind()


def _truncate(value: str, length: int) -> str:
    return value if len(value) <= length else value[: max(0, length - 3)] + "..."


def _normalize_message(message: str, trim: bool = True) -> str:
    """Keep the first two non-blank lines ("..." marks a cut) and hide event-specific values."""
    if trim:
        trimmed = "\n".join([line for line in message.splitlines() if line.strip()][:2])
        message = trimmed if trimmed == message else trimmed + "..."
    return _PARAMETER_RE.sub(
        lambda m: "=<quoted_str>" if m.lastgroup == "quoted_str" else f"<{m.lastgroup}>", message)


def _has_url_origin(path: str | None, files_count_as_urls: bool) -> bool:
    prefixes = ("http:", "https:", "applewebdata:", "blob:") + (("file:",) * files_count_as_urls)
    return bool(path) and path.startswith(prefixes)


def _frame_values(frame: dict, platform: str | None) -> list[str]:
    """The values one frame contributes: module or filename, function, context line."""
    # Anything but a string counts as absent. (Spelled out: this is the hot loop.)
    get = frame.get
    platform = v if (v := get("platform")).__class__ is str and v else platform
    abs_path = v if (v := get("abs_path")).__class__ is str else None
    function = v if (v := get("function")).__class__ is str else None
    raw_function = v if (v := get("raw_function")).__class__ is str else None
    module = v if (v := get("module")).__class__ is str else None
    filename = v if (v := get("filename")).__class__ is str else None
    raw_line = v if (v := get("context_line")).__class__ is str else None
    js = platform in _JS
    js_func = (raw_function or function or "").rsplit(".", 1)[-1] if js else None
    if js and (js_func == "eval" or abs_path in _JS_JUNK_PATHS):
        return []  # such frames appear in some browsers only; ignoring them keeps groups together
    values: list[str] = []
    if module and (platform == "java" and "$$Lambda$" in module or platform == "javascript"
                   and "/" in module and (abs_path or "").endswith(module)):
        module = None  # a generated Java lambda class, or a JS "module" copied from the URL
    if module is not None:
        values.append(module)  # the module takes precedence over the filename
    elif filename is not None:
        base = _BASENAME_RE.split(filename)[-1].lower()
        if not _has_url_origin(abs_path, False) and base not in ("<anonymous>", "[native code]"):
            values.append(base)
    context_line = None
    if raw_line and platform in _CONTEXT_LINE_PLATFORMS and len(raw_line) <= 120:
        line = " ".join(raw_line.split())
        if line and not (js and not function and _has_url_origin(abs_path, True)):
            context_line = line
    func = (raw_function or function) if platform == "csharp" else (function or raw_function)
    if not func or js and (not js_func or js_func in _JS_ANON_FUNCS or js_func.endswith("/<")):
        func = None
    elif platform == "ruby":
        func = "block" if func.startswith("block ") else _RUBY_ERB_RE.sub("", func)
    elif (
        (platform == "php" and func.startswith(("[Anonymous", "class@anonymous\x00")))
        or (platform == "java" and func.startswith("lambda$"))
        or (platform in _NATIVE and func in ("<redacted>", "<unknown>"))
    ):
        func = None  # anonymous or generated names that change from build to build
    elif platform == "php" and func.startswith("class@anonymous"):
        func = func.rsplit("::", 1)[-1]
    elif js:
        func = func.rsplit(".", 1)[-1]  # browsers disagree on "Object.foo" vs "foo"
        if context_line is not None and _get(frame, "data", dict).get("sourcemap") is not None:
            func = None  # source-mapped names are unreliable; the context line says more
    if func:
        values.append(func)
    if context_line is not None:
        values.append(context_line)
    return values


def _stacktrace_values(stacktrace: object, platform: str | None) -> tuple[list[str], list[str]]:
    """(app, system) values of one stack trace; an empty list: that variant contributes nothing."""
    frames = [f for f in _get(stacktrace, "frames", list) if isinstance(f, dict)]
    app: list[str] = []
    system: list[str] = []
    previous = _NO_FRAME
    for frame in frames:
        for key in _RECURSION_KEYS:
            if frame.get(key) != previous.get(key):
                values = _frame_values(frame, platform)
                break
        else:
            values = []  # same location as the frame before: recursion adds nothing
        previous = frame
        if (len(frames) == 1 and values and not _get(frame, "function")
                and (_get(frame, "platform") or platform) in _JS
                and _has_url_origin(_get(frame, "abs_path"), True)):
            values = []  # one nameless frame of an inline script: the URL is all there is
        system += values
        if frame.get("in_app") is True:
            app += values
    return app, system


def _exceptions(event: dict) -> list[dict]:
    values = _get(event, "exception", dict).get("values", event.get("exception"))
    return [e for e in values if isinstance(e, dict)] if isinstance(values, list) else []


def _exception_variant(event: dict, platform: str | None) -> tuple[str, list] | None:
    app: list = []
    system: list = []
    app_stack = system_stack = False
    for exc in _exceptions(event):
        mechanism = _get(exc, "mechanism", dict)
        exc_type = _get(exc, "type")
        # A synthetic exception's type is invented by the SDK and says nothing about the error.
        types = [exc_type] if exc_type and mechanism.get("synthetic") is not True else []
        stacktrace = exc.get("stacktrace")
        exc_app, exc_system = _stacktrace_values(stacktrace, platform)
        raw_value = _get(exc, "value") if not (exc_app and exc_system) else None
        value = _normalize_message(raw_value) if raw_value else ""
        value = [value] if value else []
        # The value only stands in for a missing stack trace: it varies more than code does.
        app += exc_app + types + ([] if exc_app else value)
        app_stack |= bool(exc_app)
        if isinstance(stacktrace, dict):  # like Sentry, no system variant without a stack trace
            system += exc_system + types + ([] if exc_system else value)
            system_stack |= bool(exc_system)
    # Sentry drops the variants without a contributing stack trace if another variant has one.
    if app_stack or (app and not system_stack):
        return "app", app
    return ("system", system) if system else None


def _thread_stacktrace(event: dict) -> object:
    """The stack of the one crashed thread, else of the one current thread, else the only one."""
    threads = [t for t in _get(_get(event, "threads", dict), "values", list) if isinstance(t, dict)]
    for candidates in ([t for t in threads if t.get("crashed")],
                       [t for t in threads if t.get("current")], threads):
        if len(candidates) == 1:
            return candidates[0].get("stacktrace")
    return None


def _logentry(event: dict) -> dict:
    """``logentry``, or the legacy top-level ``message`` of an event relay has not seen."""
    message = event.get("message")
    legacy = {"formatted": message} if isinstance(message, str) else _get(event, "message", dict)
    return _get(event, "logentry", dict) or legacy


def _default_variant(event: dict, platform: str | None) -> tuple[str, list]:
    found = _exception_variant(event, platform)
    for stacktrace in (_thread_stacktrace(event), event.get("stacktrace")):
        if not found:
            app, system = _stacktrace_values(stacktrace, platform)
            found = ("app", app) if app else ("system", system) if system else None
    if found:
        return found
    logentry = _logentry(event)
    message = _get(logentry, "message") or _get(logentry, "formatted")
    return ("message", [_normalize_message(message)]) if message else ("fallback", [])


def _crash_frame(event: dict, with_function: bool = False) -> dict:
    """The last in-app frame, else the last frame, of the crashing stack trace; or {}."""
    exceptions = _exceptions(event)
    frames = _get(exceptions[-1].get("stacktrace"), "frames", list) if exceptions else []
    frames = frames or _get(event.get("stacktrace"), "frames", list)
    threads = _get(_get(event, "threads", dict), "values", list)
    if not frames and len(threads) == 1:
        frames = _get(_get(threads[0], "stacktrace", dict), "frames", list)
    fallback: dict = {}
    for frame in reversed(frames):
        if isinstance(frame, dict) and not (
                with_function and frame.get("function") in (None, "<redacted>", "<unknown>")):
            if frame.get("in_app") is True:
                return frame
            fallback = fallback or frame
    return fallback


def _resolve_variable(key: str, event: dict) -> str | None:
    """The value of fingerprint variable ``key``; None if unknown (the entry is then kept)."""
    exceptions = _exceptions(event)
    last = exceptions[-1] if exceptions else {}
    field = key.rpartition(".")[2]
    if key in ("transaction", "level", "logger"):
        return _get(event, key) or f"<no-{key}>"
    if key == "message":
        logentry = _logentry(event)
        message = (_get(logentry, "formatted") or _get(logentry, "message")
                   or _get(last, "value"))
        return _normalize_message(message, trim=False) if message else "<no-message>"
    if key in ("type", "error.type", "value", "error.value"):
        return _get(last, field) or f"<no-{field}>"
    if key in ("function", "stack.function", "module", "stack.module"):
        return _get(_crash_frame(event), field) or f"<no-{field}>"
    return None


def _fingerprint(event: dict) -> list[str | None]:
    """The SDK fingerprint with its variables resolved; None marks ``{{ default }}``."""
    resolved: list[str | None] = []
    for entry in _get(event, "fingerprint", list):
        if isinstance(entry, (int, float)):  # relay turns numbers and booleans into strings
            entry = str(entry) if abs(entry) < 1e300 else None  # str() refuses giant ints
        if not isinstance(entry, str):
            continue
        match = _FINGERPRINT_VAR_RE.fullmatch(entry)
        key = match.group(1).lower() if match else None
        value = _resolve_variable(key, event) if key and key != "default" else None
        resolved.append(None if key == "default" else entry if value is None else value)
    return resolved


def _title_and_metadata(event: dict) -> tuple[str, dict]:
    exceptions = _exceptions(event)
    if event.get("type") == "transaction":
        name = _get(event, "transaction") or "<unlabeled transaction>"
        return _truncate(name, 200), {"title": name, "location": name}
    if not exceptions:
        logentry = _logentry(event)
        message = (_get(logentry, "formatted") or _get(logentry, "message") or "").strip()
        title = _truncate(message.splitlines()[0], 100) if message else "<unlabeled event>"
        return title, {"title": title}
    # An SDK may name the exception its title should come from; by default it is the last one.
    main_id = event.get("main_exception_id")
    exc = next((e for e in exceptions if main_id is not None
                and _get(e, "mechanism", dict).get("exception_id") == main_id), exceptions[-1])
    value = _get(exc, "value") or ""
    metadata = {"value": _truncate(value, 1024)}
    if _get(exc, "mechanism", dict).get("synthetic") is not True:
        metadata["type"] = _truncate(_get(exc, "type") or "Error", 128)
    frame = _crash_frame(event, with_function=True)
    if filename := _get(frame, "filename") or _get(frame, "abs_path"):
        metadata["filename"] = filename
    if function := _get(frame, "function"):
        metadata["function"] = function
    title = metadata.get("type")
    if title is not None and value:
        title += ": " + _truncate(value.splitlines()[0], 100)
    return _truncate(title or metadata.get("function") or "<unknown>", 200), metadata


def _frame_culprit(frame: dict, platform: str | None) -> str:
    platform = _get(frame, "platform") or platform
    function = _get(frame, "function") or "?"
    location = _get(frame, "module") or _get(frame, "filename")
    if platform in ("objc", "cocoa", "native"):
        return function
    if not location:
        return ""
    return f"{function}({location})" if platform in _JS else f"{location} in {function}"


def _culprit(event: dict, platform: str | None) -> str:
    if explicit := _get(event, "culprit") or _get(event, "transaction"):
        return explicit
    exceptions = _exceptions(event)
    if exceptions and _get(exceptions[-1], "mechanism", dict).get("synthetic") is True:
        return ""  # Sentry gives synthetic exceptions no culprit
    stacks = [e.get("stacktrace") for e in exceptions] or [event.get("stacktrace")]
    stacks = [frames for s in stacks if (frames := _get(s, "frames", list))]
    culprit = None  # the last in-app frame that yields a culprit, else the last frame's
    for frame in reversed(stacks[-1] if stacks else []):
        if not isinstance(frame, dict):
            continue
        if frame.get("in_app") is True:
            if in_app_culprit := _frame_culprit(frame, platform):
                culprit = in_app_culprit
                break
        elif culprit is None:
            culprit = _frame_culprit(frame, platform)
    return _truncate(culprit or _get(_get(event, "request", dict), "url") or "", 200)


def compute_grouping(event: dict) -> Grouping:
    """Group one normalized event like Sentry's ``newstyle:2023-01-11`` config does.

    Never raises: missing keys, ``None`` and values of the wrong type count as absent.
    """
    event = event if isinstance(event, dict) else {}
    platform = _get(event, "platform")
    variant, values = _default_variant(event, platform)
    fingerprint = _fingerprint(event)
    if fingerprint and fingerprint != [None]:
        if None not in fingerprint:
            variant, values = "custom-fingerprint", fingerprint
        elif variant != "fallback":  # like Sentry, only a contributing default gets salted
            variant = "salted"
            values = [v for entry in fingerprint for v in (values if entry is None else (entry,))]
    digest = md5("".join(values).encode("utf-8", "replace")).hexdigest()
    title, metadata = _title_and_metadata(event)
    return Grouping(digest, title, _culprit(event, platform), metadata, variant)
