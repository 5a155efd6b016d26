"""Routes of the operations pages, served by :class:`~minisentry.web.routes.WebUi` for signed-in users::

    GET /ui/stats/      outcomes per data category over time (?project=<slug> &period=24h|7d|30d)
    GET /ui/releases/   crash-free sessions per release      (?project=<slug> &period=24h|7d|30d)
    GET /ui/monitors/   cron monitors and their newest check-ins
    GET /ui/status/     the running pipeline's channels, lanes and kill-switches

Query parameters are parsed leniently (an unknown period is the default one); an unknown project
is a 404 page. Store reads run in worker threads and are bounded (time windows, LIMITs).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import anyio

from ..httpserver import Request
from .html import Markup
from .ops_pages import filter_form, monitors_body, releases_body, stats_body, status_body
from .periods import PERIODS, bucket_starts, parse_period, parse_query

__all__ = ["OpsRoutes", "OPS_PAGES", "OPS_PERIODS", "MAX_MONITORS", "MAX_RELEASES"]

#: Path -> title (and nav label) of each operations page, in nav order.
OPS_PAGES = {
    "/ui/stats/": "Stats",
    "/ui/releases/": "Releases",
    "/ui/monitors/": "Monitors",
    "/ui/status/": "Status",
}
OPS_PERIODS = tuple(PERIODS)
#: At most this many monitors, and release/environment rows, on a page.
MAX_MONITORS = 100
MAX_RELEASES = 50


class OpsRoutes:
    """Renders the operations pages from the store and, for ``/ui/status/``, ``status_of()``.

    ``status_of`` returns :func:`~minisentry.pipeline_status.pipeline_status`'s snapshot (or None
    when this process runs no pipeline); without it the status page says so.
    """

    def __init__(self, store: Any, status_of: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self.store = store
        self.status_of = status_of

    @staticmethod
    def path_of(path: str) -> str | None:
        """The page ``path`` names (with or without its trailing slash), or None if it is not one."""
        key = path if path.endswith("/") else path + "/"
        return key if key in OPS_PAGES else None

    async def render(self, page_path: str, request: Request) -> tuple[str, Markup]:
        """``(title, body)`` of the page at ``page_path`` (from :meth:`path_of`).

        Raises NotFound for an unknown ``?project=``, StorageError when the store fails.
        """
        params = parse_query(request.query)
        if page_path == "/ui/stats/":
            return "Stats", await self._stats(params)
        if page_path == "/ui/releases/":
            return "Releases", await self._releases(params)
        if page_path == "/ui/monitors/":
            monitors = await anyio.to_thread.run_sync(lambda: self.store.monitors_overview(limit=MAX_MONITORS))
            return "Monitors", monitors_body(monitors, MAX_MONITORS)
        return "Status", status_body(self.status_of() if self.status_of is not None else None)

    async def _project(self, params: dict[str, str]) -> tuple[list[str], str, int | None]:
        projects = await anyio.to_thread.run_sync(self.store.list_projects)
        slug = params.get("project", "")[:100]
        if not slug:
            return [p["slug"] for p in projects], "", None
        project = await anyio.to_thread.run_sync(self.store.project_by_slug, slug)
        return [p["slug"] for p in projects], slug, int(project["id"])

    async def _stats(self, params: dict[str, str]) -> Markup:
        slugs, slug, project_id = await self._project(params)
        period = parse_period(params.get("period"), OPS_PERIODS, "24h")
        now = time.time()
        starts = bucket_starts(period, now)
        rows = await anyio.to_thread.run_sync(lambda: self.store.outcome_series(
            [project_id] if project_id is not None else None, starts[0], starts[-1] + period.interval,
            period.interval, ("outcome", "category")))
        return stats_body(filter_form(slugs, slug, OPS_PERIODS, period), period, rows, now)

    async def _releases(self, params: dict[str, str]) -> Markup:
        slugs, slug, project_id = await self._project(params)
        period = parse_period(params.get("period"), OPS_PERIODS, "30d")
        since = int(time.time()) - period.seconds
        rows = await anyio.to_thread.run_sync(lambda: self.store.release_health_summary(
            project_id, since, limit=MAX_RELEASES))
        return releases_body(filter_form(slugs, slug, OPS_PERIODS, period), period, rows)
