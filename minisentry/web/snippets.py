"""SDK setup snippets for the projects page: Python, JavaScript/Node and a curl envelope, per project.

The DSN is built from ``server.public_url`` or the request's ``Host`` header, so it is untrusted
text: it goes into each language as a proper string literal (JSON's quoting is valid Python and
JavaScript; the shell gets ``shlex.quote``), and the whole snippet is then HTML-escaped. Pure
functions; nothing blocks or raises.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Callable
from urllib.parse import urlsplit

from .html import Markup, join, render

__all__ = ["python_snippet", "javascript_snippet", "curl_snippet", "snippets_body"]


def python_snippet(dsn: str) -> str:
    """``sentry_sdk.init(...)`` with ``dsn``."""
    return (f"import sentry_sdk\n\nsentry_sdk.init(\n    dsn={json.dumps(dsn)},\n"
            "    release=\"my-app@1.0.0\",\n    environment=\"production\",\n)\n")


def javascript_snippet(dsn: str) -> str:
    """``Sentry.init({dsn})`` for Node (``@sentry/node``); the browser SDK takes the same options."""
    return (f"const Sentry = require(\"@sentry/node\");\n\nSentry.init({{\n  dsn: {json.dumps(dsn)},\n"
            "  release: \"my-app@1.0.0\",\n  environment: \"production\",\n});\n")


def curl_snippet(dsn: str) -> str:
    """A ``curl`` that posts a one-event envelope to the DSN's project (no SDK needed)."""
    parts = urlsplit(dsn)
    key = parts.username or ""
    project = parts.path.strip("/").rsplit("/", 1)[-1]
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    url = f"{parts.scheme}://{netloc}/api/{project}/envelope/"
    auth = f"X-Sentry-Auth: Sentry sentry_version=7, sentry_key={key}, sentry_client=curl/1.0"
    header = json.dumps({"dsn": dsn})
    return (f"curl -X POST {shlex.quote(url)} \\\n  -H 'Content-Type: application/x-sentry-envelope' \\\n"
            f"  -H {shlex.quote(auth)} \\\n  --data-binary @- <<'EOF'\n{header}\n{{\"type\":\"event\"}}\n"
            "{\"message\":\"Hello from curl\",\"level\":\"info\",\"platform\":\"other\"}\nEOF\n")


def snippets_body(projects: list[dict[str, Any]], dsn_of: Callable[[str, int], str]) -> Markup:
    """One ``<details>`` per project with a key: Python, JavaScript/Node and curl set-up for its first key."""
    sections = []
    for project in projects:
        keys = project.get("keys") or []
        if not keys:
            continue
        dsn = dsn_of(keys[0], project["id"])
        sections.append(render(
            '<details class="setup" id="setup-$slug"><summary>Set up <strong>$slug</strong></summary>'
            '<h3>Python</h3><pre class="snippet">$py</pre>'
            '<h3>JavaScript / Node</h3><pre class="snippet">$js</pre>'
            '<h3>curl (an envelope)</h3><pre class="snippet">$curl</pre></details>',
            slug=project["slug"], py=python_snippet(dsn), js=javascript_snippet(dsn), curl=curl_snippet(dsn)))
    if not sections:
        return Markup("")
    return render("<h2>SDK setup</h2>$sections", sections=join(sections))
