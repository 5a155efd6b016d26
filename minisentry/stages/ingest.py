"""The ingest stage: split accepted envelopes into events and account for every other item.

Events and transactions continue to symbolication as :class:`EventMessage`. Client reports become
``client_discard`` outcomes; ``session``/``sessions`` items are counted for release health. Item types this version does not process yet are recorded as
``filtered`` with reason ``unsupported_item_type`` — counted, never silently dropped. Item types
a plugin registered (``plugin_items.py``) are parsed here and continue as :class:`PluginRecord`;
one its parser refuses gets outcome ``invalid`` with the parser's reason. The
``drop_before_parsing`` kill-switch drops a project's envelopes here, before any payload is parsed.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..channels import ChannelReceiver, ChannelSender, receive_batch
from ..context import StageContext
from ..envelope import Item
from ..errors import InvalidEnvelope, InvalidItem
from ..messages import Attachment, EnvelopeMessage, EventMessage, PluginRecord
from ..outcomes import Outcome, category_of_item
from ..logs import ContainerError, container_items, parse_logs
from ..monitors import CheckInError, parse_check_in
from ..sessions import SessionError, parse_session, parse_sessions

__all__ = ["IngestStage", "normalize_event_id"]

_EVENT_ITEMS = ("event", "transaction", "feedback", "security")
_LOWER_HEX = "0123456789abcdef"
#: The most envelopes taken from the inbox per wake-up.
BATCH = 64
_CLIENT_REPORT_FIELDS = {
    "discarded_events": Outcome.CLIENT_DISCARD,
    "rate_limited_events": Outcome.RATE_LIMITED,
    "filtered_events": Outcome.FILTERED,
    "filtered_sampling_events": Outcome.FILTERED,
}


def _attachment(item: Item) -> Attachment:
    def text(name: str, default: str) -> str:
        value = item.headers.get(name)
        return value[:255] if isinstance(value, str) and value else default

    return Attachment(filename=text("filename", "attachment"), content_type=text("content_type", "application/octet-stream"),
                      attachment_type=text("attachment_type", "event.attachment"), data=item.payload)


def normalize_event_id(value: Any) -> str | None:
    """Return ``value`` as 32 lowercase hex characters, or None if it is not a UUID."""
    if not isinstance(value, str):
        return None
    if len(value) == 32 and not value.strip(_LOWER_HEX):
        return value  # already the canonical form (as the relay writes it back): skip the parse
    try:
        return uuid.UUID(value).hex
    except ValueError:
        return None


class IngestStage:
    """Turn each accepted envelope into event messages and outcomes."""

    name = "ingest"

    async def run(self, inbox: ChannelReceiver, outbox: ChannelSender, ctx: StageContext) -> None:
        """Consume ``inbox`` until it ends; closes ``outbox`` on return."""
        async with inbox, outbox:
            while batch := await receive_batch(inbox, BATCH):
                for delivery in batch:
                    for event in self.split(delivery.message, ctx):
                        await outbox.send(event)
                    delivery.ack()

    def split(self, message: EnvelopeMessage, ctx: StageContext) -> list[EventMessage | PluginRecord]:
        """Return the envelope's events; record outcomes for everything else. Never raises."""
        events: list[EventMessage | PluginRecord] = []
        envelope = message.envelope
        switches = ctx.killswitches
        if (switches is not None and switches.enabled("drop_before_parsing")
                and switches.matches("drop_before_parsing", project_id=message.project_id)):
            for item in envelope.items:
                ctx.outcomes.record(message.project_id, Outcome.FILTERED, category_of_item(item.type), "killswitch",
                                    timestamp=message.received)
            return events
        header_id = normalize_event_id(envelope.headers.get("event_id"))
        attachments = [_attachment(item) for item in envelope.items if item.type == "attachment"]
        has_attachments = bool(attachments)
        for item in envelope.items:
            item_type = item.type
            if item_type in _EVENT_ITEMS:
                event = self._event(message, item, header_id, ctx)
                event.has_attachments = has_attachments
                sent_at = envelope.headers.get("sent_at")
                event.sent_at = sent_at if isinstance(sent_at, str) else None
                if attachments and item_type == "event":
                    event.attachments, attachments = attachments, []  # they belong to the first event
                events.append(event)
                header_id = None  # one event per envelope id; a second event item gets its own
            elif item_type == "attachment":
                continue  # travels with its event (above), or is counted below
            elif item_type == "user_report":
                report = self._user_report(message, item, ctx)
                if report is not None:
                    events.append(report)
            elif item_type == "client_report":
                self._client_report(message, item, ctx)
            elif item_type in ("session", "sessions") and ctx.sessions is not None:
                self._sessions(message, item, ctx)
            elif item_type == "check_in" and ctx.check_ins is not None:
                self._check_in(message, item, ctx)
            elif item_type in ("log", "span"):
                self._container(message, item, ctx)
            elif ctx.plugin_items is not None and item_type in ctx.plugin_items.types:
                record = self._plugin_item(message, item, ctx)
                if record is not None:
                    events.append(record)
            else:
                ctx.outcomes.record(
                    message.project_id, Outcome.FILTERED, category_of_item(item_type), "unsupported_item_type",
                    timestamp=message.received,
                )
        for attachment in attachments:
            # No event in this envelope to keep them with (standalone attachments are not supported yet).
            ctx.outcomes.record(message.project_id, Outcome.INVALID, "attachment", "no_event_for_attachment",
                                len(attachment.data), timestamp=message.received)
        return events

    def _event(self, message: EnvelopeMessage, item: Item, event_id: str | None, ctx: StageContext) -> EventMessage | None:
        if event_id is None:
            # Only a second event item in one envelope lacks the header's id: read the payload's.
            try:
                payload = item.json()
            except InvalidEnvelope:
                payload = None
            if isinstance(payload, dict):
                event_id = normalize_event_id(payload.get("event_id"))
            event_id = event_id or uuid.uuid4().hex
        return EventMessage(
            project_id=message.project_id,
            event_id=event_id,
            item_type=item.type,
            received=message.received,
            payload=item.payload,
            remote_addr=message.remote_addr,
        )

    def _plugin_item(self, message: EnvelopeMessage, item: Item, ctx: StageContext) -> PluginRecord | None:
        """A plugin's item type: parsed here; refused ones get outcome invalid with the plugin's reason."""
        try:
            return ctx.plugin_items.parse(item.type, message.project_id, message.received, item.payload, item.headers)
        except InvalidItem as exc:
            ctx.outcomes.record(message.project_id, Outcome.INVALID, category_of_item(item.type), exc.reason,
                                timestamp=message.received)
            ctx.log.info("%s item of project %s refused: %s", item.type, message.project_id, exc)
            return None

    def _user_report(self, message: EnvelopeMessage, item: Item, ctx: StageContext) -> EventMessage | None:
        # A user report names the event it is about; that event's id is also the report's key.
        try:
            payload = item.json()
        except InvalidEnvelope:
            payload = None
        event_id = normalize_event_id(payload.get("event_id")) if isinstance(payload, dict) else None
        if event_id is None:
            ctx.outcomes.record(message.project_id, Outcome.INVALID, category_of_item(item.type), "invalid_user_report",
                                timestamp=message.received)
            return None
        return EventMessage(project_id=message.project_id, event_id=event_id, item_type="user_report",
                            received=message.received, payload=item.payload, remote_addr=message.remote_addr)

    def _container(self, message: EnvelopeMessage, item: Item, ctx: StageContext) -> None:
        """A ``log`` or ``span`` container: logs are kept, spans counted (not stored yet)."""
        category = category_of_item(item.type)
        declared = item.headers.get("item_count")
        quantity = declared if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0 else 1
        try:
            records = container_items(item.headers, item.payload)
        except ContainerError as exc:
            ctx.outcomes.record(message.project_id, Outcome.INVALID, category, "invalid_item_count"
                                if "item_count" in str(exc) else "invalid_container", quantity,
                                timestamp=message.received)
            return
        if not records:
            return
        if item.type == "span" or ctx.logs is None:
            ctx.outcomes.record(message.project_id, Outcome.FILTERED, category, "unsupported_item_type",
                                len(records), timestamp=message.received)
            return
        logs = parse_logs(message.project_id, records, message.received)
        skipped = len(records) - len(logs)
        if skipped:
            ctx.outcomes.record(message.project_id, Outcome.INVALID, category, "invalid_log", skipped,
                                timestamp=message.received)
        if ctx.logs.put_all(logs):
            ctx.outcomes.record(message.project_id, Outcome.ACCEPTED, category, "", len(logs),
                                timestamp=message.received)
        else:
            ctx.outcomes.record(message.project_id, Outcome.RATE_LIMITED, category, "log_buffer_full", len(logs),
                                timestamp=message.received)

    def _check_in(self, message: EnvelopeMessage, item: Item, ctx: StageContext) -> None:
        try:
            check_in = parse_check_in(message.project_id, item.json(), message.received)
        except (InvalidEnvelope, CheckInError) as exc:
            ctx.outcomes.record(message.project_id, Outcome.INVALID, "monitor", "invalid_check_in",
                                timestamp=message.received)
            ctx.log.info("check-in of project %s not recorded: %s", message.project_id, exc)
            return
        if ctx.check_ins.put(check_in):
            ctx.outcomes.record(message.project_id, Outcome.ACCEPTED, "monitor", timestamp=message.received)
        else:
            ctx.outcomes.record(message.project_id, Outcome.RATE_LIMITED, "monitor", "check_in_buffer_full",
                                timestamp=message.received)

    def _sessions(self, message: EnvelopeMessage, item: Item, ctx: StageContext) -> None:
        try:
            payload = item.json()
            rows = [parse_session(message.project_id, payload)] if item.type == "session" else \
                parse_sessions(message.project_id, payload)
        except (InvalidEnvelope, SessionError) as exc:
            ctx.outcomes.record(message.project_id, Outcome.INVALID, "session", "invalid_session",
                                timestamp=message.received)
            ctx.log.info("session of project %s not counted: %s", message.project_id, exc)
            return
        if all(ctx.sessions.add(row) for row in rows):
            ctx.outcomes.record(message.project_id, Outcome.ACCEPTED, "session", timestamp=message.received)
        else:
            ctx.outcomes.record(message.project_id, Outcome.RATE_LIMITED, "session", "session_buffer_full",
                                timestamp=message.received)

    def _client_report(self, message: EnvelopeMessage, item: Item, ctx: StageContext) -> None:
        try:
            report = item.json()
        except InvalidEnvelope:
            report = None
        if not isinstance(report, dict):
            ctx.outcomes.record(message.project_id, Outcome.INVALID, "default", "invalid_client_report",
                                timestamp=message.received)
            return
        for field, outcome in _CLIENT_REPORT_FIELDS.items():
            entries = report.get(field)
            if not isinstance(entries, list):
                continue
            for entry in entries[:1000]:
                if not isinstance(entry, dict):
                    continue
                quantity = entry.get("quantity")
                reason = entry.get("reason")
                category = entry.get("category")
                if (isinstance(quantity, int) and not isinstance(quantity, bool) and 0 < quantity < 2**31
                        and isinstance(reason, str) and isinstance(category, str)):
                    ctx.outcomes.record(message.project_id, outcome, category[:64], reason[:200], quantity,
                                        timestamp=message.received)
