"""Which plugin records the SQLite store has written, so a redelivered record is written once.

A channel that redelivers (Kafka after a crash) may hand the store stage a plugin record it already
wrote. Records that carry an id (``PluginRecord.record_id``, the ``id`` their ``parse`` returned)
are remembered here in the same transaction as the plugin's ``store``; a second delivery of the
same (item type, project, id) is left out, and is not counted ``accepted`` again.

Bounded by age: ids older than ``KEEP_SECONDS`` (longer than any redelivery we expect: a Kafka
topic's retention) are deleted, at most ``_PRUNE_BATCH`` per write, so the table stays near one
week of records. Functions run inside the caller's open transaction and raise sqlite3 errors.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = ["create_plugin_id_table", "first_delivery", "KEEP_SECONDS"]

#: How long a written record's id is remembered.
KEEP_SECONDS = 7 * 86400
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
