"""The edge relay's forwarder: what the relay accepts goes to the upstream minisentry over HTTP.

It takes the place of the ingest stage (``[upstream] url`` set): ``max_concurrency`` workers read
the ``ingest`` channel and POST each envelope upstream (``upstream.py`` retries with back-off).

Upstream outage
    When an envelope still fails after its retries, it is written to the ``[spool]`` and the
    upstream is marked down. While it is down, workers spool what they receive without trying, and
    the relay spools new envelopes itself (it spools while the spool holds anything), answering 200
    until the spool is full and then 429 with Retry-After. :meth:`Forwarder.replay` probes the
    upstream with the oldest spooled envelope, single attempts with growing pauses (up to
    ``retry_max``); once one gets through, it sends the spool oldest first, ``max_concurrency`` at
    a time, deleting each record only after the upstream answered it. Without a spool, or with a
    full one, a worker keeps its envelope and keeps retrying: the channel fills and the relay
    answers 429 (backpressure instead of losing what was answered 200).

Outcomes (exactly one per item, counted where the item ends)
    Forwarded items are counted by the upstream. The edge counts what ends here: items the
    upstream refused with a 4xx other than 429 (``invalid``, reason ``upstream_<status>``) and
    spooled items that expired (``invalid``, ``spool_expired``). An upstream 429 with
    ``X-Sentry-Rate-Limits`` was counted ``rate_limited`` by the upstream; its limits are remembered
    (``upstreamlimits.py``) so that the relay refuses those categories itself, counting them
    ``rate_limited`` here. The edge has no store stage, so :meth:`Forwarder.run` writes its
    outcome counts to the local store every second.

Shutdown
    When the ingest channel ends, the workers finish what they hold; one cancelled mid-request puts
    its envelope in the spool (shielded), so nothing answered 200 is lost: at worst it reaches the
    upstream twice, which the upstream's store deduplicates.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from .channels import ChannelReceiver
from .errors import InvalidEnvelope, MinisentryError, SpoolFull, UpstreamError
from .messages import EnvelopeMessage
from .outcomes import Outcome, OutcomeAggregator, category_of_item
from .spool import DiskSpool, decode_envelope_message, encode_envelope_message
from .upstream import ForwardResult, UpstreamClient, backoff_delay
from .upstreamlimits import UpstreamLimits

__all__ = ["Forwarder", "OUTCOME_FLUSH_INTERVAL"]

log = logging.getLogger("minisentry.forwarder")

#: Seconds between writes of the edge's outcome counts to its store.
OUTCOME_FLUSH_INTERVAL = 1.0
# Seconds between looks at an empty spool.
_SPOOL_POLL = 0.05


class Forwarder:
    """Forwards the relay's accepted envelopes upstream, spooling through outages.

    ``store`` is the edge's local store (only its outcome counts are written). Every method that
    awaits blocks on the network or disk; errors are handled per envelope, nothing is raised to the
    caller except StorageError from the spool.
    """

    def __init__(self, client: UpstreamClient, *, spool: DiskSpool | None, outcomes: OutcomeAggregator,
                 limits: UpstreamLimits, store: Any) -> None:
        self.client = client
        self.spool = spool
        self.outcomes = outcomes
        self.limits = limits
        self.store = store
        self.config = client.config
        #: Whether the last attempt reached the upstream; the relay's spool takes over while not.
        self.up = True
        self.forwarded = 0
        self.spooled = 0

    async def run(self, inboxes: list[ChannelReceiver], *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        """Run the workers (one per inbox), the spool replay and the outcome writer until the inboxes end.

        Then writes the last outcome counts and returns.
        """
        try:
            async with anyio.create_task_group() as helpers:
                helpers.start_soon(self._flush_outcomes_forever)
                if self.spool is not None:
                    helpers.start_soon(self.replay)
                task_status.started()
                async with anyio.create_task_group() as workers:
                    for inbox in inboxes:
                        workers.start_soon(self._work, inbox)
                helpers.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._flush_outcomes()

    async def _work(self, inbox: ChannelReceiver) -> None:
        async with inbox:
            async for delivery in inbox:
                message = delivery.message
                try:
                    if self.up or self.spool is None or not await self._to_spool(message, hold=True):
                        await self._forward(message)
                except anyio.get_cancelled_exc_class():
                    if self.spool is not None:
                        with anyio.CancelScope(shield=True):
                            await self._to_spool(message)
                    else:
                        log.error("shutdown cancelled forwarding an envelope of project %d and there is "
                                  "no [spool] to keep it", message.project_id)
                    raise
                delivery.ack()

    async def _forward(self, message: EnvelopeMessage) -> None:
        attempt = 0
        while True:
            try:
                result = await self.client.forward(message)
            except InvalidEnvelope as exc:
                self._count(message, Outcome.INVALID, "upstream_invalid")
                log.error("cannot forward envelope: %s", exc)
                return
            except UpstreamError as exc:
                self._mark_down(exc)
                if self.spool is not None and await self._to_spool(message, hold=True):
                    return
                # No spool, or it is full: keep it and try again; meanwhile the channel fills up
                # and the relay answers 429 (backpressure instead of losing what was answered 200).
                await anyio.sleep(backoff_delay(attempt, self.config.retry_initial, self.config.retry_max))
                attempt += 1
                continue
            self._settle(message, result)
            return

    def _settle(self, message: EnvelopeMessage, result: ForwardResult) -> None:
        """Account for the upstream's final answer to ``message``."""
        if not self.up:
            log.info("upstream %s is reachable again", self.client.base_url)
        self.up = True
        if result.rate_limits:
            self.limits.add_header(message.project_id, message.public_key, result.rate_limits)
        if result.ok:
            self.forwarded += 1
        elif result.status != 429:
            # A 429 was counted rate_limited upstream; any other refusal is final and counted here.
            log.warning("upstream refused an envelope of project %d with %d: %s", message.project_id,
                        result.status, result.error)
            self._count(message, Outcome.INVALID, f"upstream_{result.status}")

    def _mark_down(self, exc: UpstreamError) -> None:
        if self.up:
            log.warning("upstream %s unreachable, spooling: %s", self.client.base_url, exc)
        self.up = False

    def _count(self, message: EnvelopeMessage, outcome: Outcome, reason: str) -> None:
        for item in message.envelope.items:
            if item.type != "client_report":
                quantity = len(item.payload) if category_of_item(item.type) == "attachment" else 1
                self.outcomes.record(message.project_id, outcome, category_of_item(item.type), reason, quantity)

    async def _to_spool(self, message: EnvelopeMessage, *, hold: bool = False) -> bool:
        """Spool ``message``; return whether it fit. A full spool with ``hold`` leaves it to the caller;
        without (shutdown), the envelope is lost: counted ``invalid``/``spool_full`` and logged."""
        assert self.spool is not None
        try:
            await anyio.to_thread.run_sync(self.spool.put, encode_envelope_message(message))
        except SpoolFull:
            if hold:
                return False
            log.error("spool full at shutdown: dropping an envelope of project %d", message.project_id)
            self._count(message, Outcome.INVALID, "spool_full")
            return False
        self.spooled += 1
        return True

    # -- the spool -------------------------------------------------------------------------------

    async def replay(self) -> None:
        """Send spooled envelopes upstream, oldest first, whenever it is reachable. Runs until cancelled."""
        assert self.spool is not None
        spool = self.spool
        probes = 0
        while True:
            expired = await anyio.to_thread.run_sync(spool.take_expired, 256)
            for _, record in expired:
                self._count_record(record, "spool_expired")
            if not len(spool):
                await anyio.sleep(_SPOOL_POLL)
                continue
            size = 1 if not self.up else self.config.max_concurrency * 4
            batch = await anyio.to_thread.run_sync(spool.peek, size)
            done: list[int] = []
            try:
                await self._replay_batch(batch, done, attempts=1 if not self.up else None)
            finally:
                # Shielded: these were answered; leaving them would send them twice after a restart.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(spool.delete, done)
            if len(done) < len(batch):
                # The upstream is down: wait longer after every failed probe.
                await anyio.sleep(backoff_delay(probes, self.config.retry_initial * 10, self.config.retry_max))
                probes += 1
            else:
                probes = 0

    async def _replay_batch(self, batch: list[tuple[int, bytes]], done: list[int], *, attempts: int | None) -> None:
        """Forward the records concurrently; add the ids that are finished with (sent or counted) to ``done``."""
        limiter = anyio.CapacityLimiter(self.config.max_concurrency)

        async def send(row_id: int, record: bytes) -> None:
            async with limiter:
                try:
                    message = decode_envelope_message(record)
                except MinisentryError as exc:
                    log.error("dropping spool record %d: %s", row_id, exc)
                    done.append(row_id)
                    return
                if not self.up and attempts is None:
                    return  # another record just found the upstream down
                try:
                    result = await self.client.forward(message, attempts=attempts)
                except InvalidEnvelope:
                    self._count(message, Outcome.INVALID, "upstream_invalid")
                except UpstreamError as exc:
                    self._mark_down(exc)
                    return
                else:
                    self._settle(message, result)
                done.append(row_id)

        async with anyio.create_task_group() as group:
            for row_id, record in batch:
                group.start_soon(send, row_id, record)

    def _count_record(self, record: bytes, reason: str) -> None:
        try:
            self._count(decode_envelope_message(record), Outcome.INVALID, reason)
        except MinisentryError as exc:
            log.error("dropping an undecodable spool record: %s", exc)

    # -- outcomes --------------------------------------------------------------------------------

    async def _flush_outcomes_forever(self) -> None:
        while True:
            await anyio.sleep(OUTCOME_FLUSH_INTERVAL)
            await self._flush_outcomes()

    async def _flush_outcomes(self) -> None:
        rows = self.outcomes.take()
        if not rows:
            return
        try:
            await anyio.to_thread.run_sync(self.store.write_batch, [], rows)
        except MinisentryError as exc:
            log.error("cannot write %d outcome rows, keeping them for the next try: %s", len(rows), exc)
            self.outcomes.restore(rows)
