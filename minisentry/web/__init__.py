"""The server-rendered web UI under ``/ui/``: sign-in, projects, issue stream, issue detail and events, triage,
and the operations pages (stats, releases, monitors, pipeline status).

``routes.WebUi`` answers the requests the relay delegates to it (``issue_routes`` an issue's pages
and attachment downloads, ``ops_routes`` the operations pages); ``sessions`` holds sign-ins and CSRF
tokens, ``login_throttle`` rate-limits failed sign-ins, ``passwords`` hashes passwords, ``html`` escapes and lays out pages, ``pages``,
``event_view``, ``event_sections``, ``event_nav``, ``issue_insights``, ``snippets`` and ``ops_pages``
build the page bodies, ``panels`` renders plugins' issue-page panels in isolation, ``downloads``
makes attachment headers safe, ``charts`` draws inline SVG and ``periods`` parses chart windows.
Users are created with ``minisentry users create``.
"""

from .routes import WebUi

__all__ = ["WebUi"]
