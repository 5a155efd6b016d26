"""Readable HTML for one stored event: message, exceptions with stack traces, the context sections
(event_sections.py: breadcrumbs, request, user, contexts, SDK, attachments), tags, extra and raw JSON.

Frames are shown innermost first (as Sentry does), each with filename, function, line, its context
lines (the current one highlighted) and local variables when the SDK sent them; in-app frames are
marked. Every value is escaped. Pure functions: nothing blocks or raises on odd event shapes.
"""

from __future__ import annotations

from typing import Any

import orjson

from .event_sections import (attachments_section, breadcrumbs_section, contexts_section, request_section,
                             sdk_section, time_text, to_text, user_section)
from .html import Markup, join, render

__all__ = ["render_event"]

_MAX_FRAMES = 200
_MAX_VARS = 50


def _values(container: Any) -> list[Any]:
    if isinstance(container, dict):
        container = container.get("values")
    return [value for value in container if isinstance(value, dict)] if isinstance(container, list) else []


def _context(frame: dict[str, Any]) -> Markup:
    pre = frame.get("pre_context") if isinstance(frame.get("pre_context"), list) else []
    post = frame.get("post_context") if isinstance(frame.get("post_context"), list) else []
    line = frame.get("context_line")
    if line is None and not pre and not post:
        return Markup("")
    lineno = frame.get("lineno") if isinstance(frame.get("lineno"), int) else None
    rows = []
    for offset, text in enumerate(pre):
        number = lineno - len(pre) + offset if lineno is not None else ""
        rows.append(render("<div>$n  $t</div>", n=number, t=text))
    if line is not None:
        rows.append(render('<div class="current">$n  $t</div>', n=lineno if lineno is not None else "", t=line))
    for offset, text in enumerate(post):
        number = lineno + 1 + offset if lineno is not None else ""
        rows.append(render("<div>$n  $t</div>", n=number, t=text))
    return render('<pre class="context">$rows</pre>', rows=join(rows))


def _vars(frame: dict[str, Any]) -> Markup:
    variables = frame.get("vars")
    if not isinstance(variables, dict) or not variables:
        return Markup("")
    rows = [render("<tr><th>$k</th><td><code>$v</code></td></tr>", k=key,
                   v=to_text(value))
            for key, value in list(variables.items())[:_MAX_VARS]]
    return render('<details class="vars"><summary>Local variables</summary><table>$rows</table></details>',
                  rows=join(rows))


def _frame(frame: dict[str, Any]) -> Markup:
    in_app = frame.get("in_app") is True
    where = frame.get("filename") or frame.get("abs_path") or frame.get("module") or "?"
    return render(
        '<div class="frame$cls"><code>$where</code> in <code>$function</code> at line $lineno$badge$context$vars</div>',
        cls=" in-app" if in_app else "", where=where, function=frame.get("function") or "?",
        lineno=frame.get("lineno") if frame.get("lineno") is not None else "?",
        badge=Markup(' <span class="muted">(in app)</span>') if in_app else Markup(""),
        context=_context(frame), vars=_vars(frame))


def _stacktrace(stacktrace: Any) -> Markup:
    frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    if not isinstance(frames, list) or not frames:
        return Markup('<p class="muted">No stack trace.</p>')
    shown = [frame for frame in frames if isinstance(frame, dict)][-_MAX_FRAMES:]
    return render('<div class="stacktrace">$frames</div>', frames=join(_frame(f) for f in reversed(shown)))


def _exceptions(data: dict[str, Any]) -> Markup:
    parts = []
    for exception in reversed(_values(data.get("exception"))):
        parts.append(render("<h3>$type: $value</h3>$trace", type=exception.get("type") or "Error",
                            value=exception.get("value") or "", trace=_stacktrace(exception.get("stacktrace"))))
    if not parts and isinstance(data.get("stacktrace"), dict):
        parts.append(_stacktrace(data["stacktrace"]))
    if not parts:
        for thread in _values(data.get("threads")):
            if isinstance(thread.get("stacktrace"), dict):
                parts.append(render("<h3>Thread $name</h3>$trace", name=thread.get("name") or thread.get("id") or "",
                                    trace=_stacktrace(thread["stacktrace"])))
    return join(parts)


def _message(data: dict[str, Any]) -> str:
    logentry = data.get("logentry")
    if isinstance(logentry, dict):
        return str(logentry.get("formatted") or logentry.get("message") or "")
    message = data.get("message")
    return message if isinstance(message, str) else ""


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        return "(too deeply nested to show)"


def render_event(event: dict[str, Any], *, attachments: list[dict[str, Any]] | None = None,
                 heading: str = "Latest event", nav: Markup = Markup("")) -> Markup:
    """An event section of an issue page under ``heading``, with ``nav`` (links to other events) on top:
    message, exceptions, breadcrumbs, request, user, contexts, tags, extra, SDK, ``attachments``
    (store rows) and the raw JSON."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    message = _message(data)
    tags = data.get("tags") if isinstance(data.get("tags"), list) else []
    tag_rows = join(render("<tr><th>$k</th><td>$v</td></tr>", k=to_text(pair[0]), v=to_text(pair[1]))
                    for pair in tags if isinstance(pair, (list, tuple)) and len(pair) == 2)
    extra = data.get("extra")
    return render(
        """<section class="event" id="event"><h2>$heading <code>$event_id</code></h2>$nav
<p class="muted">$when · platform $platform · release $release · environment $environment</p>
$message$exceptions$breadcrumbs$request$user$contexts$tags$extra$sdk$attachments
<details><summary>Raw JSON</summary><pre class="raw">$raw</pre></details></section>""",
        heading=heading, event_id=event.get("event_id", ""), nav=nav, when=time_text(data.get("timestamp")),
        platform=to_text(data.get("platform") or "-"), release=to_text(data.get("release") or "-"),
        environment=to_text(data.get("environment") or "-"),
        message=render('<p class="message">$m</p>', m=message) if message else Markup(""),
        exceptions=_exceptions(data), breadcrumbs=breadcrumbs_section(data), request=request_section(data),
        user=user_section(data), contexts=contexts_section(data),
        tags=render("<h3>Tags</h3><table>$rows</table>", rows=tag_rows) if tag_rows else Markup(""),
        extra=render('<h3>Extra</h3><pre class="extra">$x</pre>', x=_json(extra)) if extra else Markup(""),
        sdk=sdk_section(data), attachments=attachments_section(attachments or []), raw=_json(data))
