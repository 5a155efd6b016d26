"""CPU cost per event of each processing step, on real sentry-sdk error envelopes.

Steps, in pipeline order: decode (brotli) + envelope parse at the relay, the quota check (one
counted quota), normalization (Relay's StoreNormalizer with trimming), inbound filters (Sentry's
defaults plus message/release globs), PII scrubbing (Relay's engine, Sentry's default rules),
grouping, and the SQLite write (batches of 100). Scrubbing is shown three ways on the same events:
Relay's engine alone, our exact fast path on these clean events (the precheck says no rule could
change them, so Relay is skipped), and "dirty" copies holding a password in ``extra`` (the precheck
says "maybe": its cost plus Relay's). Each step runs over the same N events; the figure
is CPU time per event (``time.process_time``), median of ``--repeat`` runs, so other load on the
machine matters less. For the end-to-end rate with every step on, see ``bench_frontdoor.py``.

Run: ``python bench/bench_steps.py [--events 2000] [--repeat 5]``; prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from envelopes import make_bodies  # noqa: E402

from minisentry.backends.sqlite import SqliteStore  # noqa: E402
from minisentry.decoding import BodyDecoder  # noqa: E402
from minisentry.envelope import parse_envelope  # noqa: E402
from minisentry.filters import FilterSettings, should_filter  # noqa: E402
from minisentry.grouping import compute_grouping  # noqa: E402
from minisentry.messages import EventMessage, ProcessedEvent  # noqa: E402
from minisentry.quotas import MemoryQuotaCounters, Quota, RateLimiter, envelope_quantities  # noqa: E402
from minisentry.scrubbing import ScrubbingSettings, scrubber_for  # noqa: E402
from minisentry.stages.process import _normalize  # noqa: E402

KEY = "0123456789abcdef0123456789abcdef"


def timed(fn, repeat: int, count: int) -> float:
    """Median CPU microseconds per event of ``fn()`` (which handles ``count`` events)."""
    samples = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        samples.append((time.process_time() - start) / count * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.events
    bodies = make_bodies(n, KEY, 1)

    def decode_all():
        out = []
        for body in bodies:
            decoder = BodyDecoder("br", 1 << 24)
            decoder.feed(body)
            out.append(parse_envelope(decoder.finish()))
        return out

    envelopes = decode_all()
    quota = Quota(id="errors", categories=("error",), limit=10**9, window=60)
    limiter = RateLimiter(MemoryQuotaCounters())

    async def quotas_all():
        for envelope in envelopes:
            await limiter.check(1, KEY, envelope_quantities(envelope.items), (quota,))

    now = time.time()
    messages = [EventMessage(1, uuid.uuid4().hex, "event", now, envelope.items[0].payload, "203.0.113.7")
                for envelope in envelopes]
    normalized = [_normalize(message) for message in messages]
    filters = FilterSettings(error_messages=("*ConnectionResetError*",), releases=("*-dev",))
    scrubber = scrubber_for(ScrubbingSettings())
    scrubbed = [scrubber.scrub(event, normalized=True) for event in normalized]
    dirty = [{**event, "extra": {**event.get("extra", {}), "password": "hunter2"}} for event in normalized]
    fast_taken = sum("_meta" not in e and scrubber.unchanged_by_relay(e) is not None for e in normalized)
    assert not any(scrubber.unchanged_by_relay(e) for e in dirty)
    tmp = Path(tempfile.mkdtemp(prefix="bench-steps-"))

    def store_all():
        store = SqliteStore(tmp / f"{uuid.uuid4().hex}.sqlite").open()
        store.seed_projects([type("P", (), {"id": 1, "slug": "bench", "keys": []})()])
        events = []
        for message, event in zip(messages, scrubbed):
            grouping = compute_grouping(event)
            events.append(ProcessedEvent(1, message.event_id, "event", now, now, event, grouping.hash,
                                         grouping.title, grouping.culprit, "error", grouping.metadata))
        start = time.process_time()
        for index in range(0, len(events), 100):
            store.write_batch(events[index:index + 100], [])
        spent = time.process_time() - start
        store.close()
        return spent

    steps = {
        "decode + envelope parse": timed(decode_all, args.repeat, n),
        "quota check": timed(lambda: anyio.run(quotas_all), args.repeat, n),
        "normalization (Relay)": timed(lambda: [_normalize(m) for m in messages], args.repeat, n),
        "inbound filters": timed(lambda: [should_filter(e, filters, "203.0.113.7") for e in normalized], args.repeat, n),
        "PII scrubbing (Relay, defaults)": timed(lambda: [scrubber.scrub(e) for e in normalized], args.repeat, n),
        "PII scrubbing (fast path, clean)": timed(lambda: [scrubber.scrub(e, normalized=True) for e in normalized],
                                                  args.repeat, n),
        "PII scrubbing (fast path, dirty)": timed(lambda: [scrubber.scrub(e, normalized=True) for e in dirty],
                                                  args.repeat, n),
        "grouping": timed(lambda: [compute_grouping(e) for e in scrubbed], args.repeat, n),
        "SQLite write (batches of 100)": statistics.median(store_all() / n * 1e6 for _ in range(args.repeat)),
    }
    # The pipeline runs one scrubbing variant: count the fast path on clean events in the sum.
    total = sum(v for k, v in steps.items() if k not in ("PII scrubbing (Relay, defaults)", "PII scrubbing (fast path, dirty)"))
    print(f"{n} real sentry-sdk error events (~{len(envelopes[0].items[0].payload)} B each), "
          f"CPU µs per event, median of {args.repeat}")
    for name, micros in steps.items():
        print(f"{name:<34} {micros:>9.1f} µs  {micros / total:>6.1%}")
    print(f"(fast path taken for {fast_taken} of {n} clean events, 0 of the dirty ones; the sum counts the "
          "fast path, not Relay)")
    print(f"{'sum (one core, all steps)':<34} {total:>9.1f} µs  → {1e6 / total:,.0f} events/s per core")
    print(json.dumps({"events": n, "repeat": args.repeat, "steps_us": steps, "sum_us": total}))


if __name__ == "__main__":
    main()
