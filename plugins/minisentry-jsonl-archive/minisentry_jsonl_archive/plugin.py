"""Registers a per-event processor that archives every processed event as a JSON line.

Settings come from the environment of ``minisentry serve`` (read once, at the first event):

- ``MINISENTRY_JSONL_ARCHIVE``: the file (unset: the plugin does nothing);
- ``MINISENTRY_JSONL_ARCHIVE_MAX_BYTES``: bytes per file before it rotates (default 10 MiB);
- ``MINISENTRY_JSONL_ARCHIVE_BACKUPS``: rotated files kept (default 3).

It runs as the last step of the process stage, so it sees each event as it will be stored (normalized,
filtered, scrubbed, grouped); ``minisentry archive files`` lists the files.
"""

from __future__ import annotations

import os
import threading

import click

from minisentry import hookimpl

from .archive import JsonlArchive

_lock = threading.Lock()
_archive: list[JsonlArchive | None] = []


def archive_from_env() -> JsonlArchive | None:
    """The archive the environment configures (None: disabled). Raises ValueError for bad numbers."""
    path = os.environ.get("MINISENTRY_JSONL_ARCHIVE")
    if not path:
        return None
    return JsonlArchive(path, max_bytes=int(os.environ.get("MINISENTRY_JSONL_ARCHIVE_MAX_BYTES", 10 * 1024 * 1024)),
                        backups=int(os.environ.get("MINISENTRY_JSONL_ARCHIVE_BACKUPS", 3)))


def _current() -> JsonlArchive | None:
    with _lock:
        if not _archive:
            _archive.append(archive_from_env())
        return _archive[0]


@hookimpl
def minisentry_process_event(project_id, event):
    archive = _current()
    if archive is not None:
        archive.append(project_id, event)


@click.group("archive")
def archive_group() -> None:
    """The JSON-lines event archive (minisentry-jsonl-archive plugin)."""


@archive_group.command("files")
def archive_files() -> None:
    """List the archive's files (newest first) with their sizes."""
    archive = archive_from_env()
    if archive is None:
        raise click.ClickException("MINISENTRY_JSONL_ARCHIVE is not set")
    for path in archive.files():
        click.echo(f"{path}  {path.stat().st_size} bytes")


@hookimpl
def minisentry_register_commands(cli):
    cli.add_command(archive_group)
