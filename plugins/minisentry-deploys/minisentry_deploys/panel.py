"""The issue page's "Deploys" panel (``minisentry_register_ui_panels``).

Shows "First seen after deploy <release> (<environment>, <time>)": the latest deploy of the issue's
project at or before the issue's first event, and the deploys around it. Every value goes through
minisentry's :func:`~minisentry.web.html.render`, which escapes it and returns ``Markup``, the only
kind of text the issue page takes as HTML.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from minisentry.web.html import Markup, join, render

from .queries import deploys_around

__all__ = ["DeploysPanel"]


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _row(deploy: dict[str, Any], mark: str) -> Markup:
    url = deploy.get("url") or ""
    # parse_deploy only stores http(s) URLs; checked again so no other scheme ever becomes a link.
    link = render('<a href="$u" rel="noreferrer">$u</a>', u=url) if url.startswith(("http://", "https://")) \
        else Markup("")
    return render('<tr class="$mark"><td>$when</td><td><code>$release</code></td><td>$env</td><td>$link</td>'
                  '<td>$note</td></tr>', mark=mark, when=_when(deploy["timestamp"]), release=deploy["release"],
                  env=deploy["environment"], link=link, note="first seen after this" if mark == "culprit" else "")


class DeploysPanel:
    """Panel ``deploys``: the deploy an issue was first seen after, and its neighbours."""

    name = "deploys"
    title = "Deploys"

    def render(self, issue: dict[str, Any], db: Any) -> Markup:
        """Read the project's deploys around ``issue["first_seen"]`` (blocking, in a worker thread)."""
        earlier, later = deploys_around(db.conn, issue["project_id"], issue["first_seen"])
        if earlier:
            deploy = earlier[0]
            headline = render('<p class="deploy-culprit">First seen after deploy <strong>$release</strong> '
                              '($env, $when)</p>', release=deploy["release"], env=deploy["environment"],
                              when=_when(deploy["timestamp"]))
        else:
            headline = Markup('<p class="muted deploy-culprit">No deploy of this project before the issue was '
                              'first seen.</p>')
        rows = [_row(d, "") for d in reversed(later)] + [_row(d, "culprit" if i == 0 else "")
                                                          for i, d in enumerate(earlier)]
        if not rows:
            return headline
        return render('$headline<table class="deploys"><tr><th>Deployed</th><th>Release</th><th>Environment</th>'
                      '<th>Link</th><th></th></tr>$rows</table>', headline=headline, rows=join(rows))
