"""The server-rendered web UI under ``/ui/``: sign-in, projects, issue stream, issue detail, triage.

``routes.WebUi`` answers the requests the relay delegates to it; ``sessions`` holds sign-ins and
CSRF tokens, ``passwords`` hashes passwords, ``html`` escapes and lays out pages, ``pages`` and
``event_view`` build the page bodies. Users are created with ``minisentry users create``.
"""

from .routes import WebUi

__all__ = ["WebUi"]
