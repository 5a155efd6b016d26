"""A bounded on-disk spool: relay messages wait here, in order, while the pipeline is full.

:class:`DiskSpool` is a FIFO of opaque records in its own SQLite file; :func:`drain` is the task
that moves them into a channel as room appears; :func:`encode_envelope_message` /
:func:`decode_envelope_message` turn what the relay accepts into records and back.

Ordering
    FIFO per spool: records leave in the order ``put`` added them (ids only grow, even across
    restarts). ``drain`` sends to the channel's tail, so spooled messages arrive after whatever is
    already in the channel. A writer that sends directly to the channel while the spool still holds
    records overtakes them; a caller that wants global order spools while ``len(spool)`` is non-zero.

Limits
    ``max_bytes`` counts record bytes (not SQLite's page overhead). A ``put`` that would take the
    total past it raises :class:`~minisentry.errors.SpoolFull`, a PipelineFull, so the relay answers
    429 with ``Retry-After`` as it does without a spool; a record larger than ``max_bytes`` never
    fits. ``max_age`` (seconds, wall clock, so ages survive a restart) drops records that waited
    longer: :func:`drain` expires them before sending and hands each decoded message to
    ``on_expired`` so the caller records an outcome for it; nothing expires silently.

Delivery and crashes
    At-least-once. A record is deleted only after it was sent to the channel, so a crash between
    the send and the delete delivers it again after a restart (the store is idempotent on
    (project, event id)). Cancelling ``drain`` deletes exactly the records whose send completed;
    the rest stay. (That relies on the channel contract that a cancelled ``send`` has not sent —
    memory channels wait for room without holding the message, see ``backends/memory.py``; a send
    that did raise after handing over would make its record arrive twice, never be lost.)
    The file uses WAL with ``synchronous=NORMAL``: a committed ``put`` survives the process
    crashing (``kill -9``), which is what a spool is for. After a power loss or OS crash the last
    commits may roll back; the file itself stays consistent. Records left in the file when the
    process stops are drained by the next process that opens it. One process owns a spool file at a
    time: it is opened in SQLite's exclusive locking mode, and a second opener gets StorageError.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import anyio
import orjson

from .channels import ChannelSender
from .envelope import parse_envelope, serialize_envelope
from .errors import InvalidEnvelope, SpoolFull, StorageError
from .messages import EnvelopeMessage

__all__ = ["DiskSpool", "drain", "encode_envelope_message", "decode_envelope_message"]

log = logging.getLogger("minisentry.spool")

# Marks the file as a spool, so pointing the spool at the event store (or any other SQLite file)
# is refused instead of creating a table inside it.
_APPLICATION_ID = 0x6D73_7370  # "mssp"
_SCHEMA_VERSION = 1
_RECORD_VERSION = 1
# Seconds to wait for another connection's lock; long enough to ride out a restart overlap.
LOCK_TIMEOUT = 5.0


class DiskSpool:
    """A FIFO of byte records in one SQLite file, bounded by ``max_bytes`` and ``max_age`` seconds.

    Every method blocks on disk I/O (async callers use ``anyio.to_thread.run_sync``) and is
    thread-safe: one lock serializes use of the connection. sqlite3 failures are raised as
    StorageError naming the file. ``retry_after`` is the Retry-After that SpoolFull carries.
    """

    def __init__(self, path: str | Path, *, max_bytes: int, max_age: float, retry_after: int = 1) -> None:
        if max_bytes <= 0 or max_age <= 0:
            raise ValueError("max_bytes and max_age must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # Kept in memory so that put's limit check costs no query; exact because this connection is
        # the file's only writer (exclusive locking mode).
        self._bytes = 0
        self._count = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> "DiskSpool":
        """Open or create the file and load the running totals. Blocks.

        Raises StorageError if the file is corrupt, is not a spool, was written by a newer version,
        or another process holds it.
        """
        conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=LOCK_TIMEOUT)
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # A write transaction takes the exclusive lock now, not at the first put.
            conn.execute("BEGIN IMMEDIATE")
            self._migrate(conn)
            self._bytes, self._count = conn.execute(
                "SELECT COALESCE(SUM(length(record)), 0), COUNT(*) FROM spool").fetchone()
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError, StorageError) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"cannot open spool {self.path}: {exc}") from exc
        self._conn = conn
        return self

    def _migrate(self, conn: sqlite3.Connection) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id != _APPLICATION_ID:
            if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                raise StorageError(f"cannot open spool {self.path}: the file is another SQLite database")
            conn.execute(f"PRAGMA application_id={_APPLICATION_ID}")
        elif version > _SCHEMA_VERSION:
            raise StorageError(f"cannot open spool {self.path}: written by a newer minisentry (schema {version})")
        # AUTOINCREMENT: ids are never reused, even after the spool empties, so id order is put order.
        conn.execute("CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                     "created REAL NOT NULL, record BLOB NOT NULL)")
        conn.execute("CREATE INDEX IF NOT EXISTS spool_created ON spool(created)")
        conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the file, keeping every record in it (idempotent). Blocks."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "DiskSpool":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StorageError(f"spool {self.path} is not open")
            try:
                return fn(conn)
            except sqlite3.Error as exc:
                # A transaction left open would make every later call fail.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(f"spool {self.path}: {exc}") from exc

    # -- records --------------------------------------------------------------------------------

    def put(self, record: bytes, *, now: float | None = None) -> int:
        """Append ``record``; return its id. Blocks.

        Raises SpoolFull when the spool's record bytes would exceed ``max_bytes`` (a record that
        exactly reaches it fits). ``now`` overrides the creation time (tests).
        """
        created = time.time() if now is None else now
        size = len(record)

        def run(conn: sqlite3.Connection) -> int:
            if self._bytes + size > self.max_bytes:
                raise SpoolFull(f"spool is full ({self._bytes} of {self.max_bytes} bytes used)",
                                retry_after=self.retry_after)
            row_id = conn.execute("INSERT INTO spool(created, record) VALUES (?, ?)",
                                  (created, record)).lastrowid
            self._bytes += size
            self._count += 1
            return row_id

        return self._run(run)

    def peek(self, limit: int) -> list[tuple[int, bytes]]:
        """Return up to ``limit`` ``(id, record)`` pairs, oldest first, without removing them. Blocks."""
        return self._run(lambda conn: [(row_id, bytes(record)) for row_id, record in conn.execute(
            "SELECT id, record FROM spool ORDER BY id LIMIT ?", (limit,))])

    def delete(self, ids: Iterable[int]) -> int:
        """Remove the records with these ids (once their hand-off is done); return how many. Blocks.

        Unknown ids are ignored, so deleting twice is harmless.
        """
        ids = list(ids)

        def run(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            removed = freed = 0
            for row_id in ids:
                row = conn.execute("DELETE FROM spool WHERE id = ? RETURNING length(record)", (row_id,)).fetchone()
                if row is not None:
                    removed += 1
                    freed += row[0]
            conn.execute("COMMIT")
            self._bytes -= freed
            self._count -= removed
            return removed

        return self._run(run) if ids else 0

    def take_expired(self, limit: int | None = None, *, now: float | None = None) -> list[tuple[int, bytes]]:
        """Remove and return up to ``limit`` records older than ``max_age``, oldest first. Blocks.

        The caller owes each returned record an outcome; they are gone from the file.
        """
        cutoff = (time.time() if now is None else now) - self.max_age

        def run(conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute("DELETE FROM spool WHERE id IN (SELECT id FROM spool WHERE created < ? "
                                "ORDER BY id LIMIT ?) RETURNING id, record", (cutoff, -1 if limit is None else limit)
                                ).fetchall()
            conn.execute("COMMIT")
            self._bytes -= sum(len(record) for _, record in rows)
            self._count -= len(rows)
            return sorted((row_id, bytes(record)) for row_id, record in rows)

        return self._run(run)

    def expire(self, now: float | None = None) -> int:
        """Delete every record older than ``max_age``; return how many. Blocks.

        For callers that record one outcome per count; use take_expired to see the records.
        """
        cutoff = (time.time() if now is None else now) - self.max_age

        def run(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            count, size = conn.execute("SELECT COUNT(*), COALESCE(SUM(length(record)), 0) FROM spool "
                                       "WHERE created < ?", (cutoff,)).fetchone()
            conn.execute("DELETE FROM spool WHERE created < ?", (cutoff,))
            conn.execute("COMMIT")
            self._bytes -= size
            self._count -= count
            return count

        return self._run(run)

    def __len__(self) -> int:
        """The number of records held (from memory; does not block)."""
        return self._count

    @property
    def size_bytes(self) -> int:
        """The record bytes held, the quantity ``max_bytes`` limits (from memory; does not block)."""
        return self._bytes

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds the oldest record has waited (0.0 when empty, never negative). Blocks."""
        oldest = self._run(lambda conn: conn.execute("SELECT MIN(created) FROM spool").fetchone()[0])
        if oldest is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - oldest)


# -- records for relay messages -----------------------------------------------------------------


def encode_envelope_message(msg: EnvelopeMessage) -> bytes:
    """Serialize a relay message as one JSON header line followed by the envelope. Does not block.

    Item payloads are kept byte for byte (every item gets an explicit ``length`` header). Raises
    InvalidEnvelope when the envelope's headers cannot be written as JSON.
    """
    header = {"v": _RECORD_VERSION, "project_id": msg.project_id, "public_key": msg.public_key,
              "received": msg.received, "remote_addr": msg.remote_addr}
    try:
        return orjson.dumps(header) + b"\n" + serialize_envelope(msg.envelope)
    except orjson.JSONEncodeError as exc:
        raise InvalidEnvelope(f"envelope cannot be spooled: {exc}") from exc


def decode_envelope_message(data: bytes) -> EnvelopeMessage:
    """Rebuild the message :func:`encode_envelope_message` wrote. Does not block.

    Raises StorageError for a record that is not one (truncated, garbled or of an unknown version).
    """
    line, sep, body = bytes(data).partition(b"\n")
    try:
        header = orjson.loads(line)
        if not sep or not isinstance(header, dict) or header.get("v") != _RECORD_VERSION:
            raise ValueError("unknown record header")
        envelope = parse_envelope(body)
        return EnvelopeMessage(int(header["project_id"]), str(header["public_key"]), float(header["received"]),
                               envelope, header["remote_addr"])
    except (orjson.JSONDecodeError, InvalidEnvelope, ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"corrupt spool record: {exc}") from exc


# -- the drain task -----------------------------------------------------------------------------


def _decoded(records: list[tuple[int, bytes]]) -> list[tuple[int, EnvelopeMessage | None]]:
    result: list[tuple[int, EnvelopeMessage | None]] = []
    for row_id, record in records:
        try:
            result.append((row_id, decode_envelope_message(record)))
        except StorageError as exc:
            # A record that cannot be decoded would block the head of the queue forever.
            log.error("dropping spool record %d: %s", row_id, exc)
            result.append((row_id, None))
    return result


def _next_batch(spool: DiskSpool, limit: int) -> tuple[list, list]:
    """Take the expired records and peek at the next ones, decoded in this worker thread."""
    expired = _decoded(spool.take_expired(limit))
    # A full batch of expired records may have more behind it: expire those before sending any.
    return expired, _decoded(spool.peek(limit)) if len(expired) < limit else []


async def drain(spool: DiskSpool, sender: ChannelSender, *, batch: int = 64, poll_interval: float = 0.05,
                on_expired: Callable[[EnvelopeMessage], None] | None = None) -> None:
    """Move spooled messages into ``sender`` in order until cancelled. Long-running; never returns.

    Each round first drops expired records, calling ``on_expired(message)`` for each, then sends up
    to ``batch`` records, waiting while the channel is full, and deletes each record only after its
    send completed. Sleeps ``poll_interval`` seconds while the spool is empty. Cancellation keeps
    every record whose send did not complete. Raises StorageError from the spool, and
    anyio.ClosedResourceError / BrokenResourceError when the channel is closed (records not sent
    stay spooled). Undecodable records are logged and deleted.
    """
    while True:
        if not len(spool):
            await anyio.sleep(poll_interval)
            continue
        # Shielded so that records taken from the file always reach on_expired: cancellation is
        # delivered at the next checkpoint, after the callbacks below (which are synchronous).
        with anyio.CancelScope(shield=True):
            expired, ready = await anyio.to_thread.run_sync(_next_batch, spool, batch)
        for _, message in expired:
            if message is not None and on_expired is not None:
                on_expired(message)
        await _send_batch(spool, sender, ready)


async def _send_batch(spool: DiskSpool, sender: ChannelSender, ready: list[tuple[int, EnvelopeMessage | None]]) -> None:
    sent: list[int] = []
    try:
        for row_id, message in ready:
            if message is not None:
                try:
                    sender.send_nowait(message)
                except anyio.WouldBlock:
                    # Free the spool of what already left before waiting: the relay can spool more.
                    await sender.confirm()
                    await _delete(spool, sent)
                    sent = []
                    await sender.send(message)
            sent.append(row_id)
    finally:
        if sent:
            # Shielded: the records must be durable downstream before they leave the spool.
            with anyio.CancelScope(shield=True):
                await sender.confirm()
        await _delete(spool, sent)


async def _delete(spool: DiskSpool, ids: list[int]) -> None:
    if ids:
        # Shielded: these records are in the channel; leaving them would deliver them twice.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(spool.delete, ids)
