"""HTML for the web UI: escaping, ``string.Template`` pages, and the shared layout.

Every value goes into a page through :func:`render`, which HTML-escapes it unless it is
:class:`Markup` (HTML this package built itself from escaped parts). Nothing is loaded from
elsewhere: the stylesheet is inline. Nothing here blocks or raises (a missing template name is a
KeyError: a bug).
"""

from __future__ import annotations

import html
from string import Template
from typing import Any, Iterable

__all__ = ["Markup", "escape", "render", "join", "page"]


class Markup(str):
    """A string of HTML already safe to emit as is (built from escaped parts only)."""


def escape(value: Any) -> Markup:
    """Escape ``value`` (any object, via ``str``) for HTML text and quoted attributes; Markup passes through."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def render(template: str, **values: Any) -> Markup:
    """Fill a ``string.Template`` (``$name`` placeholders) with escaped values."""
    return Markup(Template(template).substitute({name: escape(value) for name, value in values.items()}))


def join(parts: Iterable[Any], separator: str = "") -> Markup:
    """Concatenate escaped parts into Markup."""
    return Markup(separator.join(escape(part) for part in parts))


_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#362d59;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
header a{color:#fff}header form{margin-left:auto}main{padding:1em 1.5em;max-width:1200px}
table{border-collapse:collapse;width:100%;background:#fff}td,th{border-bottom:1px solid #ddd;padding:.4em;text-align:left}
.level-error,.level-fatal{color:#b00}.level-warning{color:#a60}.muted{color:#777}
.frame{border:1px solid #ddd;background:#fff;margin:.3em 0;padding:.3em .6em}
.frame.in-app{border-left:4px solid #6c5fc7;background:#f6f4ff}
pre{background:#f4f4f4;padding:.5em;overflow:auto;white-space:pre-wrap;word-break:break-all}
.context .current{background:#ffe9a8;font-weight:bold}.status-resolved{color:#2a7}
form.inline{display:inline}.error{color:#b00}nav.pages a{margin-right:1em}
header nav a{margin-right:1em;text-decoration:none}header nav a:hover{text-decoration:underline}
svg.chart{background:#fff;border:1px solid #ddd;width:100%;max-width:1100px;height:auto}svg.chart rect:hover{opacity:.75}
nav.periods{margin:.4em 0}nav.periods a.current{font-weight:bold;color:#222;text-decoration:none}
.num{text-align:right;font-variant-numeric:tabular-nums}.legend-item{margin-right:1em}
.tag-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:.4em 1.2em}
.tag-key h3{margin:.6em 0 .2em;font-size:1em}table.tags td{padding:.15em .4em}
pre.snippet{background:#272238;color:#eee}details.setup{margin:.5em 0;background:#fff;padding:.4em .8em;border:1px solid #ddd}
.badge{display:inline-block;padding:0 .4em;border-radius:3px;font-size:.85em;background:#ddd}
.checkin-ok{background:#c9efd9}.checkin-error,.checkin-timeout{background:#f7c6c6}.checkin-missed{background:#fbe0a8}
.checkin-in_progress{background:#cfe3f7}.notice{background:#fff6d8;border:1px solid #e8d48a;padding:.5em}.ok{color:#2a7}
.event-section h4{margin:.6em 0 .2em}table.kv th{width:14em;font-weight:normal;color:#555}table.kv td code{white-space:pre-wrap;word-break:break-all}
table.breadcrumbs td{font-size:.9em;vertical-align:top}table.breadcrumbs td code{white-space:pre-wrap;word-break:break-all}
.context-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:.4em 1.2em}
nav.event-nav{margin:.3em 0 .6em}section.panel{background:#fff;border:1px solid #ddd;padding:.2em 1em;margin:.8em 0}
"""

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>$title · minisentry</title>
<meta name="referrer" content="same-origin"><style>$style</style></head>
<body><header><strong><a href="/ui/">minisentry</a></strong>$nav$user</header>
<main><h1>$title</h1>$body</main></body></html>
"""

# The signed-in user's navigation: projects and the operations pages (ops_routes.py).
_NAV = (("/ui/", "Projects"), ("/ui/stats/", "Stats"), ("/ui/releases/", "Releases"), ("/ui/monitors/", "Monitors"),
        ("/ui/status/", "Status"))

_USER = """<span>$email</span><form class="inline" method="post" action="/ui/logout">
<input type="hidden" name="csrf_token" value="$csrf"><button type="submit">Sign out</button></form>"""


def page(title: str, body: Markup, *, email: str | None = None, csrf: str = "") -> bytes:
    """A whole HTML page (UTF-8 bytes) with the header (nav and sign-out form when signed in) and ``body``."""
    user = render(_USER, email=email, csrf=csrf) if email else Markup("")
    nav = render("<nav>$links</nav>", links=join(render('<a href="$href">$label</a>', href=href, label=label)
                                                  for href, label in _NAV)) if email else Markup("")
    return render(_LAYOUT, title=title, style=Markup(_STYLE), nav=nav, user=user, body=body).encode()
