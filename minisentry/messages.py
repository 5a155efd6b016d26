"""The messages that travel between stages.

relay → ingest carries a whole accepted envelope; ingest → symbolicate → process carries one event;
process → store carries the normalized event with its grouping. Large bodies (attachments,
minidumps) will travel as keys into a payload store, not inline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .envelope import Envelope

__all__ = ["EnvelopeMessage", "EventMessage", "ProcessedEvent", "Attachment", "PluginRecord"]


@dataclass(slots=True)
class Attachment:
    """A file sent with an event (``attachment`` item): stored with it, in the same transaction."""

    filename: str
    content_type: str
    attachment_type: str
    data: bytes


@dataclass(slots=True)
class EnvelopeMessage:
    """An envelope the relay accepted for ``project_id`` (already authenticated and size-checked)."""

    project_id: int
    public_key: str
    received: float
    envelope: Envelope
    remote_addr: str | None = None


@dataclass(slots=True)
class EventMessage:
    """One event or transaction on its way to processing; ``payload`` is the item's raw JSON bytes.

    The payload stays unparsed until processing, whose normalizer parses it once.
    """

    project_id: int
    event_id: str
    item_type: str
    received: float
    payload: bytes
    remote_addr: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: How often this event moved between the fast and the slow lane (capped).
    lane_switches: int = 0
    #: Whether its envelope carried attachments (a kill-switch field).
    has_attachments: bool = False
    #: The envelope header ``sent_at`` (the SDK's clock when sending), for clock-drift correction.
    sent_at: str | None = None
    #: The envelope's attachments; they stay in this process (not sent to process workers).
    attachments: list[Attachment] = field(default_factory=list)


@dataclass(slots=True)
class ProcessedEvent:
    """A normalized event ready to store. ``group_hash``/``title``/``culprit`` are set for errors."""

    project_id: int
    event_id: str
    item_type: str
    received: float
    timestamp: float
    data: dict[str, Any]
    group_hash: str | None = None
    title: str = ""
    culprit: str = ""
    level: str = "error"
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The whole event as JSON, when it was processed in a worker process: then ``data`` holds only
    #: the few fields the store and kill-switches read, so little crosses the process boundary.
    body: bytes | None = None
    attachments: list[Attachment] = field(default_factory=list)


@dataclass(slots=True)
class PluginRecord:
    """One item of a plugin's item type, parsed at ingest, on its way to the store stage.

    ``record`` is what the item type's ``parse`` returned (JSON-encodable, so it crosses Kafka);
    ``record_id`` is its ``id`` when it has one: the plugin's ``store`` uses it to write idempotently.
    Symbolicate and process pass it through untouched.
    """

    project_id: int
    item_type: str
    received: float
    record: dict[str, Any]
    record_id: str | None = None
