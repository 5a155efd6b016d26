"""Which plugin records the SQLite store has written, so a redelivered record is written once.

A channel that redelivers (Kafka after a crash) may hand the store stage a plugin record it already
wrote. Records that carry an id (``PluginRecord.record_id``, the ``id`` their ``parse`` returned)
are remembered here in the same transaction as the plugin's ``store``; a second delivery of the
same (item type, project, id) is left out, and is not counted ``accepted`` again.

Bounded by age and by count: ids older than ``KEEP_SECONDS`` (longer than any redelivery we
expect: a Kafka topic's retention) are deleted, and past ``KEEP_ROWS`` the oldest go even if
younger, a bounded batch per write. A record redelivered after its id was forgotten is written again. Functions run inside the caller's open transaction and raise sqlite3 errors.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = ["create_plugin_id_table", "first_delivery", "KEEP_SECONDS"]

#: How long a written record's id is remembered.
KEEP_SECONDS = 7 * 86400
#: At most this many ids are remembered; past it the oldest go first, even if younger than a week.
KEEP_ROWS = 1_000_000
_PRUNE_BATCH = 1_000


def create_plugin_id_table(db: Any) -> None:
    """Create ``plugin_record_ids`` if missing (part of the store's migration)."""
    db.execute("CREATE TABLE IF NOT EXISTS plugin_record_ids (item_type TEXT NOT NULL, project_id INTEGER NOT NULL, "
               "record_id TEXT NOT NULL, written REAL NOT NULL, PRIMARY KEY (item_type, project_id, record_id))")
    db.execute("CREATE INDEX IF NOT EXISTS plugin_record_ids_written ON plugin_record_ids(written)")


def first_delivery(conn: sqlite3.Connection, item_type: str, records: list[Any], *,
                   now: float | None = None) -> list[Any]:
    """Remember the ids of ``records`` and return those not written before (id-less ones always).

    Also forgets up to ``_PRUNE_BATCH`` ids older than KEEP_SECONDS. Call inside an open transaction.
    """
    now = time.time() if now is None else now
    conn.execute("DELETE FROM plugin_record_ids WHERE rowid IN (SELECT rowid FROM plugin_record_ids "
                 "WHERE written < ? LIMIT ?)", (now - KEEP_SECONDS, _PRUNE_BATCH))
    # rowids only grow while rows are deleted oldest first, so "more than KEEP_ROWS behind the
    # newest" is a cheap stand-in for the count (its index is the rowid itself).
    newest = conn.execute("SELECT max(rowid) FROM plugin_record_ids").fetchone()[0]
    if newest is not None and newest > KEEP_ROWS:
        conn.execute("DELETE FROM plugin_record_ids WHERE rowid IN (SELECT rowid FROM plugin_record_ids "
                     "WHERE rowid <= ? LIMIT ?)", (newest - KEEP_ROWS, _PRUNE_BATCH + len(records)))
    fresh = []
    for record in records:
        if record.record_id is None:
            fresh.append(record)
            continue
        cursor = conn.execute("INSERT OR IGNORE INTO plugin_record_ids(item_type, project_id, record_id, written) "
                              "VALUES (?, ?, ?, ?)", (item_type, record.project_id, record.record_id, now))
        if cursor.rowcount == 1:
            fresh.append(record)
    return fresh
