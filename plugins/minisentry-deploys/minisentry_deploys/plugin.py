"""Deploy markers: the ``deploy`` item type, ``POST /api/<project_id>/deploys/``, ``minisentry deploys``
and the issue page's "Deploys" panel (panel.py).

A deploy marker is ``{"release": ..., "environment": ..., "timestamp": ..., "url": ...}``; it arrives
as a ``deploy`` envelope item or as the body of ``POST /api/<project_id>/deploys/?sentry_key=KEY``
(what a CI job sends) and is stored in the ``plugin_deploys`` table of minisentry's SQLite file.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from typing import Any

import orjson
import sqlite_utils

from minisentry import hookimpl
from minisentry.errors import BadRequest, InvalidItem, NotFound

from .commands import deploys as deploys_group
from .panel import DeploysPanel
from .queries import NoSuchIssue, deploy_before_issue, list_deploys

TABLE = "plugin_deploys"
_MAX_TEXT = 200
_MAX_URL = 2000


def _timestamp(value: Any) -> float:
    """Seconds since the epoch from a number or an ISO 8601 string; InvalidItem otherwise."""
    if value is None:
        return time.time()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 2**33:
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.timestamp()
    raise InvalidItem("timestamp must be seconds since the epoch or ISO 8601 with a time zone",
                      reason="invalid_deploy_timestamp")


def parse_deploy(payload: bytes) -> dict[str, Any]:
    """Validate a deploy marker; return the record to store. Does not block.

    Raises InvalidItem (a ValueError) naming the field that is wrong.
    """
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidItem(f"not JSON: {exc}", reason="invalid_deploy") from exc
    if not isinstance(data, dict):
        raise InvalidItem("a deploy marker must be a JSON object", reason="invalid_deploy")
    release = data.get("release")
    if not isinstance(release, str) or not release.strip() or len(release) > _MAX_TEXT:
        raise InvalidItem(f"release must be a non-empty string of at most {_MAX_TEXT} characters",
                          reason="invalid_deploy_release")
    environment = data.get("environment", "production")
    if not isinstance(environment, str) or not environment or len(environment) > _MAX_TEXT:
        raise InvalidItem(f"environment must be a non-empty string of at most {_MAX_TEXT} characters",
                          reason="invalid_deploy_environment")
    url = data.get("url")
    if url is not None and (not isinstance(url, str) or len(url) > _MAX_URL
                            or not url.startswith(("http://", "https://"))):
        raise InvalidItem(f"url must be an http(s) URL of at most {_MAX_URL} characters", reason="invalid_deploy_url")
    timestamp = _timestamp(data.get("timestamp"))
    # The id makes a marker sent twice (a retried CI job) one row.
    digest = hashlib.sha256(f"{release}\0{environment}\0{timestamp:.3f}".encode()).hexdigest()[:32]
    return {"id": digest, "release": release.strip(), "environment": environment, "timestamp": timestamp, "url": url}


class DeployItems:
    """Item type ``deploy`` (data category ``default``; at most 4 KiB per marker)."""

    type = "deploy"
    data_category = "default"
    max_bytes = 4096

    def parse(self, payload: bytes, headers: dict[str, Any]) -> dict[str, Any]:
        """See :func:`parse_deploy`."""
        return parse_deploy(payload)

    def migrate(self, db: sqlite_utils.Database) -> None:
        """Create the ``plugin_deploys`` table and its index (idempotent)."""
        db[TABLE].create({"id": str, "project_id": int, "release": str, "environment": str, "timestamp": float,
                          "url": str, "received": float}, pk="id", if_not_exists=True)
        db[TABLE].create_index(["project_id", "timestamp"], if_not_exists=True)

    def store(self, db: sqlite_utils.Database, records: list[Any]) -> None:
        """Insert the markers; one already stored (same id) is left as it is."""
        db[TABLE].insert_all(({**r.record, "id": f"{r.project_id}:{r.record_id}", "project_id": r.project_id,
                               "received": r.received} for r in records), pk="id", ignore=True)


class DeployEndpoint:
    """``POST /api/<project_id>/deploys/``: the body is the deploy marker."""

    name = "deploys"
    item_type = "deploy"

    def to_item(self, body: bytes, query: dict[str, str]) -> bytes:
        """The body as it is (``parse`` checks it)."""
        return body


class DeployRoutes:
    """Read API: ``GET /api/0/plugins/deploys/[?project=ID&limit=N]`` and ``.../deploys/issue/<id>/``."""

    name = "deploys"

    def get(self, db: sqlite_utils.Database, path: str, query: dict[str, str]) -> Any:
        """Answer one read (blocking, in a worker thread). Raises BadRequest or NotFound."""
        if path == "":
            try:
                project_id = int(query["project"]) if "project" in query else None
                limit = int(query.get("limit", "100"))
            except ValueError as exc:
                raise BadRequest("project and limit must be integers") from exc
            if not 1 <= limit <= 1000:
                raise BadRequest("limit must be 1..1000")
            return list_deploys(db.conn, project_id, limit)
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == "issue" and parts[1].isdigit():
            try:
                issue, deploy = deploy_before_issue(db.conn, int(parts[1]))
            except NoSuchIssue as exc:
                raise NotFound(str(exc)) from exc
            return {"issue_id": int(parts[1]), "first_seen": issue["first_seen"], "deploy": deploy}
        raise NotFound(f"no deploys route {path!r}")


@hookimpl
def minisentry_register_api_routes():
    return [DeployRoutes()]


@hookimpl
def minisentry_register_item_types():
    return [DeployItems()]


@hookimpl
def minisentry_register_endpoints():
    return [DeployEndpoint()]


# optionalhook: a minisentry older than the panel hook still loads the plugin (without the panel).
@hookimpl(optionalhook=True)
def minisentry_register_ui_panels():
    return [DeploysPanel()]


@hookimpl
def minisentry_register_commands(cli):
    cli.add_command(deploys_group)
