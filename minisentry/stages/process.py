"""The process stage: normalize each event with Relay's own rules, then group it into an issue.

Normalization uses ``sentry_relay.StoreNormalizer`` through ``normalizer.py`` (Sentry's Rust normalizer, which parses the raw
payload once); inbound filters drop what the project does not want (``[filters]``, outcome
``filtered`` with Sentry's reason key); then the event is scrubbed of PII (``scrubbing.py``, ``[scrubbing]``: an event that
cannot be scrubbed is never stored, outcome ``invalid``/``scrubbing_failed``); grouping uses
``grouping.compute_grouping``. Filters and scrubbing are each project's effective settings (the
file's sections merged with the project's stored ones, ``project_settings.py``), looked up per batch. Work is taken in batches of whatever is
buffered (up to ``BATCH``) and done in a worker thread: the Rust normalizer releases the GIL, so on
a machine with a spare core the event loop keeps accepting requests meanwhile.

Plugins' per-event processors (``minisentry_process_event``) run last, after grouping, on every
event and transaction about to be stored — in this process and a worker thread, also when the
batch was processed in worker processes (those cannot call plugins). What they change is stored but
changes neither the grouping nor is it scrubbed; one that raises marks the event ``plugin_failed``.
Plugin records (``PluginRecord``) pass through to the store untouched.

An event the normalizer rejects (not JSON, not an object) becomes an ``invalid`` outcome with reason
``invalid_json``; it is acknowledged and never stops the stage.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass, replace
from typing import Any

import anyio
import orjson
from anyio import BrokenWorkerProcess
from sentry_relay.exceptions import RelayError

from ..channels import ChannelReceiver, ChannelSender, receive_batch
from ..clientip import fill_auto_ip
from ..clockdrift import correct_drift, drift_of
from ..codec import summarize
from ..context import StageContext
from ..errors import ScrubbingError
from ..gctuning import tune_for_serving
from ..grouping import Grouping, compute_grouping
from ..killswitches import KillSwitches
from ..messages import EventMessage, ProcessedEvent
from ..normalizer import normalize, normalizer_for
from ..outcomes import Outcome, category_of_item
from ..plugin_items import apply_processors, processor_count
from ..filters import FilterSettings, should_filter
from ..scrubbing import ScrubbingSettings, scrubber_for
from .switches import hits, peek

# The kill-switches checked inside process_event (and so inside worker processes).
_WORKER_SWITCHES = ("drop_after_parsing", "skip_processing")

__all__ = ["ProcessStage", "Rejected", "process_event"]

log = logging.getLogger("minisentry.process")

#: The most events one worker takes from its inbox and processes in one worker-thread call. With
#: process workers, 128 (~850 KB pickled, under their 1 MiB pipes) measured 3-5 % less CPU per event
#: than 64 under load, and 256 no less than 128 (bench/README.md, session 4).
BATCH = 128
_GROUPING_FAILED = Grouping(hash=hashlib.md5(b"minisentry:grouping-failed").hexdigest(),
                            title="<event could not be grouped>", culprit="", metadata={}, variant="fallback")


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event that is not stored, with the outcome and reason to record for it."""

    message: EventMessage
    reason: str
    outcome: Outcome = Outcome.INVALID


def _normalize(message: EventMessage) -> dict | None:
    payload = message.payload
    drift = drift_of(message.sent_at, message.received)
    if drift is not None:
        # The device's clock is off: shift its timestamps first, so the future/past limits below judge
        # the corrected times (as Relay does). Rare, so parsing twice here is fine.
        raw = peek(payload)
        if raw is not None:
            payload = orjson.dumps(correct_drift(raw, drift, message.sent_at, message.received))
    data = normalize(message.project_id, payload)
    if not isinstance(data, dict) or (data.get("_meta") or {}).get(""):
        return None  # the payload was JSON but not an event object
    # The relay's clock, not the normalizer's moment of work, says when the event arrived.
    data["received"] = message.received
    return data


def _group(message: EventMessage, data: dict) -> Grouping:
    try:
        return compute_grouping(data)
    except Exception:
        # A grouping bug must not lose the event or stop the stage: keep it in one per-project
        # "could not group" issue and flag it, so it is visible and fixable.
        log.exception("grouping failed for event %s of project %s", message.event_id, message.project_id)
        data.setdefault("errors", []).append({"type": "grouping_failed"})
        return _GROUPING_FAILED


def process_event(message: EventMessage, switches: Any = None, scrubbing: ScrubbingSettings | None = None,
                  filters: FilterSettings | None = None) -> ProcessedEvent | Rejected:
    """Normalize and group one event. Blocks on CPU (safe to call from a worker thread); never raises.

    Kill-switches: ``drop_after_parsing`` drops a matching event (outcome filtered/killswitch)
    before it is normalized; ``skip_processing`` stores a matching event as the SDK sent it, grouped
    but not normalized, with a ``processing_skipped`` entry in its ``errors``.
    """
    if message.item_type in _FEEDBACK_ITEMS:
        return _feedback(message)
    raw = None
    if switches is not None and (switches.enabled("drop_after_parsing") or switches.enabled("skip_processing")):
        raw = peek(message.payload)
        if hits(switches, "drop_after_parsing", message, raw):
            return Rejected(message, "killswitch", Outcome.FILTERED)
    normalized = False
    if raw is not None and hits(switches, "skip_processing", message, raw):
        data = raw
        data.setdefault("errors", []).append({"type": "processing_skipped"})
        data["received"] = message.received
    else:
        try:
            data = _normalize(message)
            normalized = True
        except (RelayError, ValueError, TypeError) as exc:
            log.info("event %s of project %s is not valid JSON: %s", message.event_id, message.project_id,
                     str(exc).split("\n", 1)[0])
            data = None
    if data is None:
        return Rejected(message, "invalid_json")
    fill_auto_ip(data, message.remote_addr)
    if filters is not None:
        reason = should_filter(data, filters, message.remote_addr)
        if reason is not None:
            return Rejected(message, reason, Outcome.FILTERED)
    if scrubbing is not None:
        # Before grouping (as in Sentry) and long before anything is stored.
        try:
            # normalized: only the normalizer's output may take the scrubber's exact fast path.
            data = scrubber_for(scrubbing).scrub(data, normalized=normalized)
        except ScrubbingError as exc:
            log.warning("event %s of project %s not stored: %s", message.event_id, message.project_id, exc)
            return Rejected(message, exc.reason)
    # The envelope header's id is the one the SDK was answered with; it wins over the payload's.
    data["event_id"] = message.event_id
    if message.errors:
        # Problems found before processing (a symbolication deadline, a failing plugin) are kept
        # with the event, as Sentry keeps processing errors in ``errors``.
        data.setdefault("errors", []).extend(message.errors)
    timestamp = data.get("timestamp")
    if not isinstance(timestamp, (int, float)):
        timestamp = message.received or time.time()
    if message.item_type == "transaction":
        return ProcessedEvent(
            project_id=message.project_id, event_id=message.event_id, item_type="transaction",
            received=message.received, timestamp=float(timestamp), data=data,
            title=str(data.get("transaction") or "<unlabeled transaction>"), level="info",
        )
    grouping = _group(message, data)
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


_FEEDBACK_ITEMS = ("user_report", "feedback")


def _feedback(message: EventMessage) -> ProcessedEvent | Rejected:
    """A user report (``user_report``) or user feedback (``feedback``) as the fields the store keeps."""
    raw = peek(message.payload)
    if raw is None:
        return Rejected(message, "invalid_json")
    if message.item_type == "user_report":
        fields = {"associated_event_id": message.event_id, "name": raw.get("name"), "email": raw.get("email"),
                  "message": raw.get("comments")}
    else:
        context = (raw.get("contexts") or {}).get("feedback")
        if not isinstance(context, dict):
            return Rejected(message, "invalid_feedback")
        associated = context.get("associated_event_id")
        fields = {"associated_event_id": associated.replace("-", "").lower() if isinstance(associated, str) else None,
                  "name": context.get("name"), "email": context.get("contact_email"),
                  "message": context.get("message"), "url": context.get("url")}
    data = {key: value[:4096] for key, value in fields.items() if isinstance(value, str)}
    if not data.get("message"):
        return Rejected(message, "invalid_feedback")
    return ProcessedEvent(project_id=message.project_id, event_id=message.event_id, item_type=message.item_type,
                          received=message.received, timestamp=message.received, data=data, level="info")


#: Per project in a batch: the (scrubbing, filters) settings to apply to its events.
BatchSettings = dict[int, tuple[ScrubbingSettings | None, FilterSettings | None]]


def _process_batch(messages: list[EventMessage], switches: Any, settings: BatchSettings) -> list[ProcessedEvent | Rejected]:
    return [process_event(message, switches, *settings[message.project_id]) for message in messages]


def process_batch_in_worker(messages: list[EventMessage], switch_values: dict | None, settings: BatchSettings) -> list:
    """Process a batch in a worker process (see ``stages.process_workers``). Blocks on CPU.

    ``settings`` holds each project's (scrubbing, filters) — plain picklable data; the compiled
    scrubbers and patterns are cached per value in each worker. Returns the results with each
    event's JSON already serialized: sending bytes back costs far less than pickling the event
    dict, and the store writes those bytes as they are.
    """
    _prepare_worker()  # a worker started on demand (after one broke) was not warmed
    switches = KillSwitches(switch_values) if switch_values else None
    return [summarize(result) if isinstance(result, ProcessedEvent) else result
            for result in _process_batch(messages, switches, settings)]


#: Pipe capacity asked for between this process and a worker (Linux; the default is 64 KiB).
WORKER_PIPE_BYTES = 1 << 20
_worker_prepared = False


def _prepare_worker() -> None:
    """Once per worker process: serving GC settings and roomier pipes. Never raises.

    A batch is up to 128 events of ~6.5 KB each; through 64 KiB pipes every batch took several
    write/wake-up rounds between the two processes, which cost the serving process more than
    the copying itself. Either end of a pipe may resize it, so the worker does it for both.
    """
    global _worker_prepared
    if _worker_prepared:
        return
    _worker_prepared = True
    tune_for_serving()
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    for fd in (0, 1):  # anyio's worker protocol: requests on stdin, results on stdout
        try:
            if set_size is not None and stat.S_ISFIFO(os.fstat(fd).st_mode):
                fcntl.fcntl(fd, set_size, WORKER_PIPE_BYTES)
        except OSError:
            pass  # over the system's pipe limits: the default size still works


def warm_worker() -> int:
    """Run once in each new worker process: build the default scrubber and a normalizer. Blocks on CPU.

    Importing this module (what unpickling this function does) and compiling the scrubber's
    patterns cost ~0.5 s of CPU per process; paid at startup, the first events do not wait for it.
    The worker is ours alone, so it also gets the serving GC settings (``gctuning.py``) and
    larger pipes (:func:`_prepare_worker`).
    Returns the worker's pid.
    """
    _prepare_worker()
    scrubber_for(ScrubbingSettings())
    normalizer_for(0)
    return os.getpid()


def batch_settings(messages: list[EventMessage], ctx: StageContext) -> BatchSettings:
    """Each project's effective (scrubbing, filters) for the events of a batch. Never blocks on I/O."""
    project_settings = ctx.settings
    if project_settings is None:
        return {m.project_id: (ctx.config.scrubbing, ctx.config.filters) for m in messages}
    return {pid: (project_settings.scrubbing_of(pid), project_settings.filters_of(pid))
            for pid in {m.project_id for m in messages}}


class ProcessStage:
    """Normalize and group events in batches; hand them to the store.

    With ``workers`` > 0 the batches go to that many worker processes (anyio.to_process), which
    puts the normalizer — most of the CPU an event costs — on other cores; the GIL keeps threads
    from doing that. With 0 they run in a worker thread of this process.
    """

    name = "process"

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers
        self._limiter = anyio.CapacityLimiter(workers) if workers else None
        self._warmed = False

    async def warm(self) -> None:
        """Start every worker process now (once per stage), so the first events do not pay for it.

        Blocks until they are up; a worker that fails to start is logged and started again on demand.
        """
        if self._limiter is None or self._warmed:
            return
        self._warmed = True

        async def start_one() -> None:
            try:
                await anyio.to_process.run_sync(warm_worker, limiter=self._limiter)
            except BrokenWorkerProcess:
                log.exception("a process worker failed to start; it is started again when needed")

        # Concurrent calls: each finds no idle worker and starts its own.
        async with anyio.create_task_group() as group:
            for _ in range(self.workers):
                group.start_soon(start_one)

    async def _run_batch(self, messages: list[EventMessage], ctx: StageContext) -> list:
        switches = ctx.killswitches
        settings = batch_settings(messages, ctx)
        if self._limiter is None:
            return await anyio.to_thread.run_sync(_process_batch, messages, switches, settings)
        # Attachments are not needed to process an event: don't ship them to the workers.
        messages = [replace(m, attachments=[]) if m.attachments else m for m in messages]
        values = None
        if switches is not None and any(switches.enabled(name) for name in _WORKER_SWITCHES):
            values = {name: switches.conditions(name) for name in _WORKER_SWITCHES}
        try:
            return await anyio.to_process.run_sync(process_batch_in_worker, messages, values, settings,
                                                   limiter=self._limiter)
        except BrokenWorkerProcess:
            # A worker that died (killed, out of memory) must not lose the batch: do it here.
            log.exception("a process worker broke; processing its batch of %d in this process", len(messages))
            return await anyio.to_thread.run_sync(_process_batch, messages, switches, settings)

    async def run(self, inbox: ChannelReceiver, outbox: ChannelSender, ctx: StageContext) -> None:
        """Consume ``inbox`` until it ends; closes ``outbox`` on return."""
        async with inbox, outbox:
            await self.warm()
            while batch := await receive_batch(inbox, BATCH):
                events = [d for d in batch if isinstance(d.message, EventMessage)]
                results = await self._run_batch([d.message for d in events], ctx) if events else []
                if results and processor_count(ctx.hooks):
                    # Plugins' per-event processors run here, in this process (worker processes
                    # cannot call plugins), on the worker results, in a worker thread.
                    results = await anyio.to_thread.run_sync(apply_processors, ctx.hooks, results)
                result_of = {id(d): r for d, r in zip(events, results)}
                for delivery in batch:
                    message = delivery.message
                    if not isinstance(message, EventMessage):
                        await outbox.send(message)  # a plugin record: for the store stage
                        delivery.ack()
                        continue
                    result = result_of[id(delivery)]
                    if isinstance(result, Rejected):
                        ctx.outcomes.record(message.project_id, result.outcome, category_of_item(message.item_type),
                                            result.reason, timestamp=message.received)
                        for attachment in message.attachments:
                            ctx.outcomes.record(message.project_id, result.outcome, "attachment", result.reason,
                                                len(attachment.data), timestamp=message.received)
                    else:
                        result.attachments = message.attachments
                        await outbox.send(result)
                    delivery.ack()
