"""Plugin panels on the issue page (``minisentry_register_ui_panels``): collected, checked, rendered in isolation.

A panel is an object with ``name`` (``[a-z][a-z0-9_-]*``, unique), ``title`` and
``render(issue, db)``, called in a worker thread with a copy of the issue's dict and a sqlite-utils
Database on the read-only store (as plugin API routes get). What it returns is trusted only when it
is :class:`~minisentry.web.html.Markup` (build it with :func:`minisentry.web.html.render`, which
escapes every value); a plain ``str`` is escaped and shown as text. A panel that raises, or returns
anything else, is logged with its traceback and replaced by a short "panel <name> failed" note: the
rest of the issue page renders as usual.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import anyio
import pluggy

from ..errors import PluginError
from ..plugin_manager import collect
from .html import Markup, join, render

__all__ = ["collect_panels", "render_panels", "PANEL_NAME_RE"]

log = logging.getLogger("minisentry.plugins")

#: What a panel's ``name`` must look like (it becomes the section's HTML id, ``panel-<name>``).
PANEL_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def collect_panels(pm: pluggy.PluginManager) -> dict[str, Any]:
    """The registered UI panels by name, in registration order, checked once at startup. Does not block.

    Raises PluginError naming the panel for a bad name, a missing title or render(), and (from
    ``collect``) naming both plugins for a duplicate name.
    """
    panels = collect(pm, "minisentry_register_ui_panels")
    for name, panel in panels.items():
        if not PANEL_NAME_RE.match(name):
            raise PluginError(f"ui panel {name!r}: the name must match {PANEL_NAME_RE.pattern}")
        title = getattr(panel, "title", None)
        if not isinstance(title, str) or not title.strip():
            raise PluginError(f"ui panel {name!r} has no title (a non-empty string)")
        if not callable(getattr(panel, "render", None)):
            raise PluginError(f"ui panel {name!r} has no render(issue, db) method")
    return panels


def _failed(name: str) -> Markup:
    return render('<p class="error panel-failed">panel $name failed</p>', name=name)


async def _render_one(name: str, panel: Any, issue: dict[str, Any], reader: Any) -> Markup:
    try:
        # The read-only store's read_plugin hands over a sqlite-utils Database, in a worker thread.
        result = await anyio.to_thread.run_sync(reader.read_plugin, lambda db: panel.render(dict(issue), db))
    except Exception:  # the plugin's bug (or its query's): one note, the page goes on
        log.exception("ui panel %r failed for issue %s", name, issue.get("id"))
        return _failed(name)
    if isinstance(result, Markup):
        return result
    if isinstance(result, str):
        return render('<p class="panel-text">$text</p>', text=result)
    log.error("ui panel %r returned %s for issue %s, not str or Markup", name, type(result).__name__, issue.get("id"))
    return _failed(name)


async def render_panels(panels: dict[str, Any], issue: dict[str, Any], reader: Any) -> Markup:
    """Every panel's section (title and body) for ``issue``, one after the other. Blocks only in worker
    threads; never raises for a panel's failure (cancellation passes through)."""
    if not panels or reader is None or not hasattr(reader, "read_plugin"):
        return Markup("")
    sections = []
    for name, panel in panels.items():
        body = await _render_one(name, panel, issue, reader)
        sections.append(render('<section class="panel" id="panel-$name"><h2>$title</h2>$body</section>',
                               name=name, title=panel.title, body=body))
    return render('<div class="panels">$sections</div>', sections=join(sections))
