"""The server-rendered web UI under ``/ui/``: sign-in, projects, issue stream, issue detail, triage,
and the operations pages (stats, releases, monitors, pipeline status).

``routes.WebUi`` answers the requests the relay delegates to it (``ops_routes`` the operations
pages); ``sessions`` holds sign-ins and CSRF tokens, ``passwords`` hashes passwords, ``html``
escapes and lays out pages, ``pages``, ``event_view``, ``issue_insights``, ``snippets`` and
``ops_pages`` build the page bodies, ``charts`` draws inline SVG and ``periods`` parses chart
windows. Users are created with ``minisentry users create``.
"""

from .routes import WebUi

__all__ = ["WebUi"]
