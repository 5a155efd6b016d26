"""The process stage: normalize each event with Relay's own rules, then group it into an issue.

Normalization uses ``sentry_relay.StoreNormalizer`` (Sentry's Rust normalizer); grouping uses
``grouping.compute_grouping``. An event the normalizer rejects is recorded as an ``invalid``
outcome (reason ``process_error``) and acknowledged; it never stops the stage.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone

import orjson
from sentry_relay import StoreNormalizer
from sentry_relay.exceptions import RelayError

from ..channels import ChannelReceiver, ChannelSender
from ..context import StageContext
from ..grouping import Grouping, compute_grouping
from ..messages import EventMessage, ProcessedEvent
from ..outcomes import Outcome, category_of_item

__all__ = ["ProcessStage", "normalize"]


def normalize(message: EventMessage) -> dict:
    """Return the normalized event. Raises sentry_relay's RelayError for events it rejects."""
    normalizer = StoreNormalizer(
        project_id=message.project_id,
        client_ip=message.remote_addr,
        received_at=datetime.fromtimestamp(message.received, timezone.utc).isoformat(),
        enable_trimming=True,
        normalize_user_agent=True,
    )
    return normalizer.normalize_event(raw_event=orjson.dumps(message.payload), json_loads=orjson.loads)


class ProcessStage:
    """Normalize and group events; hand them to the store."""

    name = "process"

    def handle(self, message: EventMessage, ctx: StageContext) -> ProcessedEvent | None:
        """Return the processed event, or None after recording an outcome for a rejected one."""
        try:
            data = normalize(message)
        except (RelayError, ValueError, TypeError) as exc:
            ctx.log.warning("event %s of project %s rejected by normalization: %s",
                            message.event_id, message.project_id, exc)
            ctx.outcomes.record(message.project_id, Outcome.INVALID, category_of_item(message.item_type),
                                "process_error", timestamp=message.received)
            return None
        timestamp = data.get("timestamp")
        if not isinstance(timestamp, (int, float)):
            timestamp = message.received or time.time()
        if message.item_type == "transaction":
            return ProcessedEvent(
                project_id=message.project_id, event_id=message.event_id, item_type="transaction",
                received=message.received, timestamp=float(timestamp), data=data,
                title=str(data.get("transaction") or "<unlabeled transaction>"), level="info",
            )
        grouping = self._group(message, data, ctx)
        level = data.get("level")
        data["title"] = grouping.title
        data["culprit"] = grouping.culprit
        data["metadata"] = grouping.metadata
        return ProcessedEvent(
            project_id=message.project_id, event_id=message.event_id, item_type=message.item_type,
            received=message.received, timestamp=float(timestamp), data=data,
            group_hash=grouping.hash, title=grouping.title, culprit=grouping.culprit,
            level=level if isinstance(level, str) else "error", metadata=grouping.metadata,
        )

    def _group(self, message: EventMessage, data: dict, ctx: StageContext) -> Grouping:
        try:
            return compute_grouping(data)
        except Exception:
            # A grouping bug must not lose the event or stop the stage: keep it in one
            # per-project "could not group" issue and flag it, so it is visible and fixable.
            ctx.log.exception("grouping failed for event %s of project %s", message.event_id, message.project_id)
            data.setdefault("errors", []).append({"type": "grouping_failed"})
            return Grouping(hash=hashlib.md5(b"minisentry:grouping-failed").hexdigest(),
                            title="<event could not be grouped>", culprit="", metadata={}, variant="fallback")

    async def run(self, inbox: ChannelReceiver, outbox: ChannelSender, ctx: StageContext) -> None:
        """Consume ``inbox`` until it ends; closes ``outbox`` on return."""
        async with inbox, outbox:
            async for delivery in inbox:
                processed = self.handle(delivery.message, ctx)
                if processed is not None:
                    await outbox.send(processed)
                delivery.ack()
