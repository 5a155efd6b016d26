"""The symbolication stage: pull-based workers that run the registered symbolicators on each event.

Symbolicators come from plugins (``minisentry_register_symbolicators``): objects with a ``name`` and
``async def symbolicate(message) -> EventMessage``. Each worker *pulls* one event at a time from its
inbox when it is free, so a slow event occupies one worker, never a queue of others behind a busy
worker. Every event has a deadline (``stages.symbolicate_deadline`` seconds for all symbolicators
together): past it, or when a symbolicator raises, the event continues unsymbolicated with an entry
in its ``errors`` (``symbolication_timeout`` / ``symbolicator_failed``). It is never dropped.
The ``skip_symbolication`` kill-switch lets matching events pass untouched.
Workers finish out of order; the channel commits acknowledgements in order.

Without symbolicators the stage is a pass-through that moves events in bursts.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import anyio

from ..channels import ChannelReceiver, ChannelSender, receive_batch
from ..context import StageContext
from ..messages import EventMessage
from .switches import hits, peek

__all__ = ["SymbolicateStage"]

log = logging.getLogger("minisentry.symbolicate")

#: Events moved per wake-up when there is nothing to symbolicate.
PASS_THROUGH_BATCH = 64


def _tick_interval(ctx: StageContext) -> float:
    return min(max(ctx.config.lanes.bucket_seconds / 10, 0.05), 1.0)


class _Charge:
    """Charges one event's running duration to its project: d² in total, in increments."""

    __slots__ = ("lanes", "project_id", "started", "charged")

    def __init__(self, lanes: Any, project_id: int) -> None:
        self.lanes = lanes
        self.project_id = project_id
        self.started = anyio.current_time()
        self.charged = 0.0  # the duration already charged for

    def _charge_until_now(self) -> None:
        elapsed = max(anyio.current_time() - self.started, 0.0)
        # Recording sqrt(e² - c²) adds exactly e² - c² of cost: the total stays d².
        self.lanes.record(self.project_id, (elapsed * elapsed - self.charged * self.charged) ** 0.5)
        self.charged = elapsed

    async def tick(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            self._charge_until_now()

    def settle(self) -> None:
        self._charge_until_now()


def _wants(symbolicator: Any, message: EventMessage) -> bool:
    """The symbolicator's ``wants(message)`` probe; True without one, or when the probe itself fails."""
    probe = getattr(symbolicator, "wants", None)
    if probe is None:
        return True
    try:
        return bool(probe(message))
    except Exception:
        # A broken probe must not cost the event its symbolication: let symbolicate() decide.
        log.exception("symbolicator %s: wants() failed", getattr(symbolicator, "name", symbolicator))
        return True


class SymbolicateStage:
    """Pull events, run the symbolicators within a deadline, hand them to processing."""

    name = "symbolicate"

    def __init__(self, symbolicators: Sequence[Any] = ()) -> None:
        self.symbolicators = tuple(symbolicators)

    async def handle(self, message: EventMessage, ctx: StageContext) -> EventMessage:
        """Run every symbolicator on the event within the deadline. Never raises for a bad event.

        The time it took is charged to the project's lane budget (``ctx.lanes``).
        """
        if not self.symbolicators or not isinstance(message, EventMessage) \
                or message.item_type in ("user_report", "feedback"):
            # Plugin records (and feedback) have nothing to symbolicate: passed through.
            return message
        if ctx.killswitches is not None and ctx.killswitches.enabled("skip_symbolication"):
            if hits(ctx.killswitches, "skip_symbolication", message, peek(message.payload)):
                return message
        # Most events need no symbolicator (a Python error): ask each one's cheap probe first, so
        # such events skip the deadline, the lane charge and their task group altogether.
        wanted = [s for s in self.symbolicators if _wants(s, message)]
        if not wanted:
            return message
        deadline = anyio.current_time() + ctx.config.stages.symbolicate_deadline
        if ctx.lanes is None:
            return await self._symbolicate(wanted, message, ctx, deadline)
        charge = _Charge(ctx.lanes, message.project_id)
        async with anyio.create_task_group() as tg:
            # Charge the running duration while the event is worked on (as Sentry does), so a
            # project whose events hang is demoted while they hang, not only once they finish.
            tg.start_soon(charge.tick, _tick_interval(ctx))
            try:
                return await self._symbolicate(wanted, message, ctx, deadline)
            finally:
                tg.cancel_scope.cancel()
                charge.settle()

    async def _symbolicate(self, wanted: list[Any], message: EventMessage, ctx: StageContext,
                           deadline: float) -> EventMessage:
        for symbolicator in wanted:
            name = getattr(symbolicator, "name", type(symbolicator).__name__)
            with anyio.CancelScope(deadline=deadline) as scope:
                try:
                    message = await symbolicator.symbolicate(message) or message
                except Exception as exc:
                    # A plugin's bug marks this event; it must not stop the stage or lose the event.
                    log.exception("symbolicator %s failed on event %s", name, message.event_id)
                    message.errors.append({"type": "symbolicator_failed", "symbolicator": name,
                                           "reason": str(exc)[:200]})
            if scope.cancelled_caught:
                log.warning("event %s of project %s passed its symbolication deadline in %s",
                            message.event_id, message.project_id, name)
                message.errors.append({"type": "symbolication_timeout", "symbolicator": name,
                                       "deadline_seconds": ctx.config.stages.symbolicate_deadline})
                break
        return message

    async def run(self, inbox: ChannelReceiver, outbox: ChannelSender, ctx: StageContext) -> None:
        """Consume ``inbox`` until it ends; closes ``outbox`` on return."""
        batch_size = 1 if self.symbolicators else PASS_THROUGH_BATCH
        async with inbox, outbox:
            while batch := await receive_batch(inbox, batch_size):
                for delivery in batch:
                    await outbox.send(await self.handle(delivery.message, ctx))
                    delivery.ack()
