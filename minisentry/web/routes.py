"""The web UI's routes under ``/ui/`` (and ``/``, which redirects there): :class:`WebUi`.

Routes::

    GET  /ui/login                          the sign-in form          POST /ui/login    sign in (rate-limited)
    POST /ui/logout                         sign out
    GET  /ui/                               projects with their DSNs
    GET  /ui/projects/<slug>/issues/        the issue stream (?query= &status= &level= &release=
                                            &environment= &sort= &page=)
    GET  /ui/issues/<id>/                   an issue, its events over time (?period=24h|30d), its tag
                                            breakdown, plugin panels and its latest event (issue_routes.py)
    GET  /ui/issues/<id>/events/[<event_id>/]   all its events (?page=), one of them (issue_routes.py)
    GET  /ui/attachments/<id>/              an attachment's bytes as a download (octet-stream, nosniff)
    GET  /ui/stats/ /ui/releases/ /ui/monitors/ /ui/status/   operations pages (ops_routes.py)
    POST /ui/issues/<id>/status             change the status (``issue_status.form_change``: ``status`` =
                                            resolved, resolvedInNextRelease, unresolved or ignored, with
                                            ``ignore`` = forever, count (+ ``count``) or until (+ ``until``))

Every page but the sign-in form needs a session (otherwise a redirect to it); every POST needs its
form's CSRF token (otherwise 403). Errors are answered as small HTML pages, never raised.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from typing import Any, Callable
from urllib.parse import parse_qsl

import anyio

from ..clientip import client_ip
from ..errors import AuthForbidden, MethodNotAllowed, NotFound, RequestError
from ..httpserver import Request, Response
from ..issue_status import form_change
from .html import join, page, render
from .issue_routes import IssueRoutes
from .login_throttle import LoginThrottle
from .ops_routes import OpsRoutes
from .pages import LEVELS, issues_body, login_body, projects_body
from .snippets import snippets_body
from .passwords import verify_password
from .sessions import LOGIN_COOKIE, Session, Sessions, check_csrf, cookies

__all__ = ["WebUi"]

_ISSUES_RE = re.compile(r"^/ui/projects/([\w.-]{1,100})/issues/?$")
_STATUS_RE = re.compile(r"^/ui/issues/(\d{1,18})/status/?$")
_HTML = "text/html; charset=utf-8"
_SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
]
_MAX_FORM_FIELDS = 20


def _html(status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, body, [*_SECURITY_HEADERS, *(headers or [])], content_type=_HTML)


def _redirect(location: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return _html(303, b"", [("Location", location), *(headers or [])])


def _form(request: Request) -> dict[str, str]:
    pairs = parse_qsl(request.body.decode("utf-8", "replace"), max_num_fields=_MAX_FORM_FIELDS)
    return dict(pairs)


class WebUi:
    """Serves the web UI from a writable store (``SqliteStore`` or one with the same web methods).

    ``handle`` never raises for a refused request: it answers 303/403/404/405 pages itself. Store
    calls and password checks run in worker threads.
    """

    def __init__(self, store: Any, web_config: Any, public_url: str = "", *, trusted_proxies: tuple = (),
                 status_of: Callable[[], dict[str, Any] | None] | None = None, reader: Any = None,
                 panels: dict[str, Any] | None = None) -> None:
        self.store = store
        # Pages read through the read-only store (its own connection and lock), so a heavy page
        # (tag counts over 1,000 event bodies, a month of outcomes) never holds the lock the store
        # stage writes events under. Sign-ins, sessions and status changes use the writable one.
        self.reads = reader if reader is not None else store
        # status_of: the running pipeline's snapshot for /ui/status/ (pipeline_status.py), if any.
        self.ops = OpsRoutes(self.reads, status_of)
        # reader is also what the plugins' panels (panels.py) read through.
        self.issues = IssueRoutes(self.reads, reader, panels)
        self.config = web_config
        self.public_url = public_url.rstrip("/")
        self.trusted_proxies = trusted_proxies
        self.throttle = LoginThrottle(attempts=web_config.login_attempts,
                                      address_attempts=web_config.login_address_attempts,
                                      window=web_config.login_window, max_tracked=web_config.login_tracked)
        self.sessions = Sessions(store, max_age=web_config.session_max_age, max_sessions=web_config.max_sessions,
                                 secure=web_config.secure_cookies)

    @staticmethod
    def matches(path: str) -> bool:
        """Whether ``path`` belongs to the web UI (``/`` or under ``/ui/``)."""
        return path == "/" or path == "/ui" or path.startswith("/ui/")

    async def handle(self, request: Request) -> Response:
        """Answer one web UI request (see the module docstring). Raises StorageError only."""
        try:
            return await self._route(request)
        except RequestError as exc:
            body = page(f"{exc.status}", render("<p>$detail</p>", detail=exc.detail))
            return _html(exc.status, body)

    async def _route(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path in ("/", "/ui"):
            return _redirect("/ui/")
        if path == "/ui/login":
            return await self._login(request)
        session = await self.sessions.current(request)
        if method == "POST":
            if session is None:
                raise AuthForbidden("not signed in")
            form = _form(request)
            check_csrf(session.csrf, form)
            if path == "/ui/logout":
                return _redirect("/ui/login", [("Set-Cookie", await self.sessions.end(session))])
            match = _STATUS_RE.match(path)
            if match is not None:
                return await self._set_status(int(match.group(1)), form)
            raise NotFound(f"no route for {path}")
        if method != "GET":
            raise MethodNotAllowed(f"{method} is not allowed here")
        if session is None:
            return _redirect("/ui/login")
        if path == "/ui/":
            return await self._projects(request, session)
        ops_path = self.ops.path_of(path)
        if ops_path is not None:
            title, body = await self.ops.render(ops_path, request)
            return _html(200, page(title, body, email=session.email, csrf=session.csrf))
        match = _ISSUES_RE.match(path)
        if match is not None:
            return await self._issues(request, session, match.group(1))
        shown = await self.issues.page(path, request, session.csrf)
        if shown is not None:
            return _html(200, page(shown[0], shown[1], email=session.email, csrf=session.csrf))
        download = await self.issues.attachment(path)
        if download is not None:
            headers, data = download
            # Never the SDK's declared type: an uploaded text/html must not render on this origin.
            return Response(200, data, [*_SECURITY_HEADERS, *headers], content_type="application/octet-stream")
        raise NotFound(f"no page {path}")

    # -- sign-in --------------------------------------------------------------------------------

    async def _login(self, request: Request) -> Response:
        if request.method == "GET":
            return self._login_form()
        if request.method != "POST":
            raise MethodNotAllowed(f"{request.method} is not allowed here")
        form = _form(request)
        check_csrf(cookies(request).get(LOGIN_COOKIE, ""), form)
        email = form.get("email", "").strip().lower()[:254]
        password = form.get("password", "")
        address = client_ip(request.remote_addr, request.headers.get("x-forwarded-for"), self.trusted_proxies)
        wait = self.throttle.retry_after(email, address)
        if wait > 0:
            minutes = max(1, math.ceil(wait / 60))
            return self._login_form(f"Too many failed sign-ins. Try again in {minutes} minute{'s' * (minutes > 1)}.",
                                    status=429, headers=[("Retry-After", str(math.ceil(wait)))])
        user = await anyio.to_thread.run_sync(self.store.user_by_email, email) if email else None
        ok = await anyio.to_thread.run_sync(verify_password, password, user["password_hash"] if user else None)
        if user is None or not ok:
            self.throttle.failed(email, address)
            return self._login_form("Wrong email or password.", status=403)
        self.throttle.succeeded(email)
        set_cookie = await self.sessions.start(user["id"])
        return _redirect("/ui/", [("Set-Cookie", set_cookie),
                                  ("Set-Cookie", self.sessions.cookie(LOGIN_COOKIE, "", 0))])

    def _login_form(self, error: str = "", status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        token = secrets.token_urlsafe(24)
        body = page("Sign in", login_body(token, error))
        return _html(status, body, [("Set-Cookie", self.sessions.cookie(LOGIN_COOKIE, token, 3600)), *(headers or [])])

    # -- pages ----------------------------------------------------------------------------------

    def _dsn(self, request: Request, key: str, project_id: int) -> str:
        base = self.public_url or f"http://{request.headers.get('host', 'localhost')}"
        scheme, _, rest = base.partition("://")
        return f"{scheme}://{key}@{rest}/{project_id}"

    async def _projects(self, request: Request, session: Session) -> Response:
        projects = await anyio.to_thread.run_sync(self.reads.list_projects)
        dsn_of = lambda key, pid: self._dsn(request, key, pid)  # noqa: E731
        body = join((projects_body(projects, dsn_of), snippets_body(projects, dsn_of)))
        return _html(200, page("Projects", body, email=session.email, csrf=session.csrf))

    async def _issues(self, request: Request, session: Session, slug: str) -> Response:
        params = dict(parse_qsl(request.query, max_num_fields=_MAX_FORM_FIELDS))
        project = await anyio.to_thread.run_sync(self.reads.project_by_slug, slug)
        try:
            number = min(max(int(params.get("page", "1")), 1), 10_000)
        except ValueError:
            number = 1
        size = self.config.page_size
        level = params.get("level", "") if params.get("level", "") in LEVELS else ""
        status = params.get("status", "") if params.get("status", "") in ("unresolved", "resolved", "ignored") else ""
        rows = await anyio.to_thread.run_sync(lambda: self.reads.search_issues(
            project["id"], query=params.get("query", "")[:200], status=status, level=level,
            release=params.get("release", "")[:200], environment=params.get("environment", "")[:200],
            sort=params.get("sort", "last_seen"), limit=size + 1, offset=(number - 1) * size))
        body = issues_body(slug, rows[:size], {**params, "level": level, "status": status}, number, len(rows) > size)
        return _html(200, page(f"Issues of {slug}", body, email=session.email, csrf=session.csrf))

    async def _set_status(self, issue_id: int, form: dict[str, str]) -> Response:
        change = form_change(form, now=time.time())
        if not await anyio.to_thread.run_sync(self.store.change_issue_status, [issue_id], change):
            raise NotFound(f"no issue {issue_id}")
        return _redirect(f"/ui/issues/{issue_id}/")
