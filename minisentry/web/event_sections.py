"""The event view's context sections: breadcrumbs, request, user, contexts, SDK and attachments.

Each function takes the stored event's ``data`` (whatever shape the SDK sent; scrubbing already
ran, so what is shown is what was stored) and returns escaped :class:`Markup`, or empty Markup when
the event has no such section. Odd shapes (a list where a dict belongs, nested junk, huge values)
are shown as JSON or skipped, never raised: pure functions, nothing blocks.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

import orjson

from .html import Markup, join, render

__all__ = ["breadcrumbs_section", "request_section", "user_section", "contexts_section", "sdk_section",
           "attachments_section", "to_text", "time_text", "MAX_BREADCRUMBS"]

#: At most this many breadcrumbs are shown (the newest ones).
MAX_BREADCRUMBS = 100
_MAX_ROWS = 100
_MAX_CONTEXTS = 50
_MAX_TEXT = 10_000
# Sentry's usual contexts first, in this order; any others follow by name.
_CONTEXT_ORDER = ("os", "browser", "runtime", "device", "app", "trace")
_USER_FIRST = ("id", "email", "username", "ip_address")


def to_text(value: Any) -> str:
    """A value for a table cell: strings as they are, anything else as JSON; cut to 10,000 characters."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):
            # Deeper than orjson writes (254 levels): say so rather than fail the page.
            text = "(too deeply nested to show)"
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"


def time_text(value: Any) -> str:
    """A timestamp for people: seconds since the epoch as UTC with milliseconds; strings as sent; else empty."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
        except (OverflowError, OSError, ValueError):
            return str(value)
    return value if isinstance(value, str) else ""


def _pairs(value: Any) -> list[tuple[Any, Any]]:
    """Key/value pairs of a dict or of a list of ``[key, value]`` pairs (headers, query strings)."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        return [(item[0], item[1]) for item in value if isinstance(item, (list, tuple)) and len(item) == 2]
    return []


def _table(pairs: Iterable[tuple[Any, Any]], css: str = "kv") -> Markup:
    rows = [render('<tr><th>$k</th><td><code>$v</code></td></tr>', k=to_text(key), v=to_text(value))
            for key, value in list(pairs)[:_MAX_ROWS]]
    return render('<table class="$css">$rows</table>', css=css, rows=join(rows)) if rows else Markup("")


def _section(section_id: str, title: str, body: Markup) -> Markup:
    return render('<section class="event-section" id="$id"><h3>$title</h3>$body</section>',
                  id=section_id, title=title, body=body)


def breadcrumbs_section(data: dict[str, Any]) -> Markup:
    """Breadcrumbs in time order (newest last): time, category, level, message, data; the newest
    :data:`MAX_BREADCRUMBS` of them."""
    crumbs = data.get("breadcrumbs")
    if isinstance(crumbs, dict):
        crumbs = crumbs.get("values")
    if not isinstance(crumbs, list):
        return Markup("")
    crumbs = [crumb for crumb in crumbs if isinstance(crumb, dict)]
    if not crumbs:
        return Markup("")
    shown = crumbs[-MAX_BREADCRUMBS:]
    rows = [render('<tr class="level-$level"><td>$time</td><td>$category</td><td>$level</td><td>$message</td>'
                   '<td><code>$data</code></td></tr>', time=time_text(crumb.get("timestamp")),
                   category=to_text(crumb.get("category") or crumb.get("type") or ""),
                   level=to_text(crumb.get("level") or "info"), message=to_text(crumb.get("message") or ""),
                   data=to_text(crumb["data"]) if crumb.get("data") else "") for crumb in shown]
    note = render('<p class="muted">The newest $n of $total breadcrumbs.</p>', n=len(shown), total=len(crumbs)) \
        if len(shown) < len(crumbs) else Markup("")
    return _section("breadcrumbs", "Breadcrumbs", render(
        '$note<table class="breadcrumbs"><tr><th>Time</th><th>Category</th><th>Level</th><th>Message</th>'
        '<th>Data</th></tr>$rows</table>', note=note, rows=join(rows)))


def request_section(data: dict[str, Any]) -> Markup:
    """The HTTP request: method and URL, query string, headers, cookies, body and environment."""
    request = data.get("request")
    if not isinstance(request, dict) or not request:
        return Markup("")
    parts = [render('<p class="request-line"><code>$method $url</code></p>', method=to_text(request.get("method") or ""),
                    url=to_text(request.get("url") or ""))]
    for key, label in (("query_string", "Query string"), ("headers", "Headers"), ("cookies", "Cookies"),
                       ("data", "Body"), ("env", "Environment"), ("fragment", "Fragment")):
        value = request.get(key)
        if value in (None, "", [], {}):
            continue
        pairs = _pairs(value) if key != "data" else []
        body = _table(pairs) if pairs else render('<pre class="request-$key">$v</pre>', key=key, v=to_text(value))
        parts.append(render("<h4>$label</h4>$body", label=label, body=body))
    others = [(key, value) for key, value in request.items() if key not in (
        "method", "url", "query_string", "headers", "cookies", "data", "env", "fragment")]
    if others:
        parts.append(render("<h4>Other</h4>$t", t=_table(others)))
    return _section("request", "Request", join(parts))


def user_section(data: dict[str, Any]) -> Markup:
    """The user: id, email, username, IP address, then any other fields."""
    user = data.get("user")
    if not isinstance(user, dict) or not user:
        return Markup("")
    first = [(key, user[key]) for key in _USER_FIRST if user.get(key) not in (None, "")]
    rest = [(key, value) for key, value in user.items() if key not in _USER_FIRST]
    return _section("user", "User", _table(first + rest, "kv user"))


def contexts_section(data: dict[str, Any]) -> Markup:
    """Every context (os, browser, runtime, device, app, trace first, then the others by name) as a table."""
    contexts = data.get("contexts")
    if not isinstance(contexts, dict) or not contexts:
        return Markup("")
    rank = {name: index for index, name in enumerate(_CONTEXT_ORDER)}
    names = sorted(contexts, key=lambda name: (rank.get(name, len(rank)), str(name)))[:_MAX_CONTEXTS]
    blocks = []
    for name in names:
        value = contexts[name]
        body = _table(value.items()) if isinstance(value, dict) else render("<pre>$v</pre>", v=to_text(value))
        blocks.append(render('<div class="context-block" id="context-$id"><h4>$name</h4>$body</div>',
                             id=to_text(name)[:100], name=to_text(name), body=body))
    return _section("contexts", "Contexts", render('<div class="context-grid">$b</div>', b=join(blocks)))


def sdk_section(data: dict[str, Any]) -> Markup:
    """The SDK: name and version, its integrations and packages."""
    sdk = data.get("sdk")
    if not isinstance(sdk, dict) or not sdk:
        return Markup("")
    pairs: list[tuple[Any, Any]] = [("name", sdk.get("name") or ""), ("version", sdk.get("version") or "")]
    integrations = sdk.get("integrations")
    if isinstance(integrations, list) and integrations:
        pairs.append(("integrations", ", ".join(to_text(item) for item in integrations[:_MAX_ROWS])))
    packages = sdk.get("packages")
    if isinstance(packages, list) and packages:
        pairs.append(("packages", ", ".join(
            f"{to_text(p.get('name'))} {to_text(p.get('version'))}" if isinstance(p, dict) else to_text(p)
            for p in packages[:_MAX_ROWS])))
    return _section("sdk", "SDK", _table(pairs, "kv sdk"))


def _size(size: Any) -> str:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return "-"
    if size < 1024:
        return f"{size} B"
    return f"{size / 1024:.1f} KiB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MiB"


def attachments_section(attachments: list[dict[str, Any]]) -> Markup:
    """The event's attachments (store rows: ``id, filename, content_type, size``) with download links."""
    if not attachments:
        return Markup("")
    rows = [render('<tr><td><a href="/ui/attachments/$id/" download>$name</a></td><td><code>$type</code></td>'
                   '<td class="num">$size</td></tr>', id=int(row["id"]), name=row.get("filename") or "attachment",
                   type=row.get("content_type") or "", size=_size(row.get("size"))) for row in attachments]
    return _section("attachments", "Attachments", render(
        '<table class="attachments"><tr><th>File</th><th>Type (as sent)</th><th>Size</th></tr>$rows</table>',
        rows=join(rows)))
