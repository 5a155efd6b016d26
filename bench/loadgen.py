"""Closed-loop HTTP/1.1 load generator replaying pre-built sentry-sdk envelope POSTs.

What it measures: how many ``POST /api/<project>/envelope/`` requests a server on 127.0.0.1
accepts per second (200s) at a given concurrency, the count of each status code, connection
errors, and latency percentiles (p50/p90/p99/max, ms). Also its own CPU use (``client_cpu_util``
near 1.0 means the client, not the server, was the bottleneck).

How: plain asyncio (its callback-based ``Protocol`` path is the cheapest pure-Python client loop),
``concurrency`` keep-alive connections, each sending one request, waiting for the whole response
(parsed with ``httptools``) and sending the next. All requests are built before the clock starts
(headers as sentry-sdk sends them + a body with a unique event id from ``bench/envelopes.py``);
connections are opened before the clock starts too. A connection the server closes (or that
answers ``Connection: close``) is reopened, a bounded number of times. The run stops after
``requests`` requests or ``duration`` seconds, whichever comes first; if it sends more requests
than there are bodies, bodies are reused (``bodies_reused`` in the result says so).

Importable::

    from loadgen import run_load            # with bench/ on sys.path
    result = asyncio.run(run_load("127.0.0.1", 8123, bodies, concurrency=16, requests=20000))

CLI (prints one JSON line)::

    python bench/loadgen.py --host 127.0.0.1 --port 8123 --project 1 \
        --key 0123456789abcdef0123456789abcdef --requests 20000 --concurrency 16 [--cpu 1] \
        [--duration 10] [--bodies N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import json
import os
import sys
import time
from typing import Any

import httptools

_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))

#: Reopened connections allowed per run before giving up (bounds a server that keeps closing).
MAX_RECONNECTS = 10_000


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"refusing to send load to {host!r}: only loopback addresses are allowed")


def build_requests(
    host: str,
    port: int,
    bodies: list[bytes],
    project_id: int,
    public_key: str,
    headers: dict[str, str] | None = None,
) -> list[bytes]:
    """Whole HTTP/1.1 requests (head + body) as sentry-sdk's transport would send them."""
    if headers is None:
        from sentry_sdk.consts import VERSION  # noqa: PLC0415

        if _BENCH_DIR not in sys.path:
            sys.path.insert(0, _BENCH_DIR)
        from envelopes import auth_header  # noqa: PLC0415

        headers = {
            "User-Agent": f"sentry.python/{VERSION}",
            "Content-Type": "application/x-sentry-envelope",
            "Content-Encoding": "br",
            "X-Sentry-Auth": auth_header(public_key),
        }
    head = (
        f"POST /api/{project_id}/envelope/ HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nAccept-Encoding: identity\r\n"
    )
    for k, v in headers.items():
        if k.lower() not in ("host", "content-length", "connection", "accept-encoding"):
            head += f"{k}: {v}\r\n"
    head_b = head.encode("latin-1") + b"Content-Length: "
    return [head_b + b"%d\r\n\r\n" % len(b) + b for b in bodies]


class _Run:
    """State shared by all connections of one run (single-threaded: no locks)."""

    def __init__(self, reqs: list[bytes], limit: int | None, duration: float | None) -> None:
        self.reqs = reqs
        self.nreqs = len(reqs)
        self.limit = limit if limit is not None else 1 << 62
        self.duration = duration
        self.deadline = float("inf")
        self.next = 0
        self.status: dict[int, int] = {}
        self.lat: list[int] = []
        self.errors = 0
        self.timeouts = 0
        self.reconnects = 0
        self.active: set[_Client] = set()
        self.t_last = 0.0

    def exhausted(self) -> bool:
        return self.next >= self.limit or time.perf_counter() >= self.deadline


class _Client(asyncio.Protocol):
    def __init__(self, run: _Run, done: asyncio.Future) -> None:
        self.run = run
        self.done = done
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.t0 = 0
        self.inflight = False
        self.finished = False

    # asyncio callbacks -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.run.active.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.active.discard(self)
        if self.inflight:
            self.inflight = False
            self.run.errors += 1
        if not self.done.done():
            self.done.set_result("finished" if self.finished else "closed")

    # httptools callback ----------------------------------------------------------------------
    def on_message_complete(self) -> None:
        run = self.run
        now = time.perf_counter_ns()
        run.lat.append(now - self.t0)
        code = self.parser.get_status_code()
        run.status[code] = run.status.get(code, 0) + 1
        self.inflight = False
        if not self.parser.should_keep_alive():
            self.transport.close()  # type: ignore[union-attr]
            return
        self.send_next()

    # ---------------------------------------------------------------------------------------------
    def _fail(self) -> None:
        if self.inflight:
            self.inflight = False
            self.run.errors += 1
        self.transport.close()  # type: ignore[union-attr]

    def send_next(self) -> None:
        run = self.run
        i = run.next
        if i >= run.limit or time.perf_counter() >= run.deadline:
            self.finished = True
            run.t_last = max(run.t_last, time.perf_counter())
            self.transport.close()  # type: ignore[union-attr]
            return
        run.next = i + 1
        self.inflight = True
        self.t0 = time.perf_counter_ns()
        self.transport.write(run.reqs[i % run.nreqs])  # type: ignore[union-attr]


async def _connect(loop: asyncio.AbstractEventLoop, host: str, port: int, run: _Run) -> _Client:
    done = loop.create_future()
    _, proto = await loop.create_connection(lambda: _Client(run, done), host, port)
    return proto  # type: ignore[return-value]


async def _connection_worker(
    loop: asyncio.AbstractEventLoop, host: str, port: int, run: _Run, first: _Client
) -> None:
    client = first
    client.send_next()
    while True:
        outcome = await client.done
        if outcome == "finished" or run.exhausted():
            run.t_last = max(run.t_last, time.perf_counter())
            return
        # The server closed the connection: reopen it (bounded), then carry on.
        for _attempt in range(100):
            if run.reconnects >= MAX_RECONNECTS or run.exhausted():
                run.t_last = max(run.t_last, time.perf_counter())
                return
            run.reconnects += 1
            try:
                client = await _connect(loop, host, port, run)
                break
            except OSError:
                run.errors += 1
                await asyncio.sleep(0.01)
        else:
            return
        client.send_next()


async def _watchdog(run: _Run, timeout: float) -> None:
    """Close connections whose request has waited longer than ``timeout`` (counted as errors)."""
    limit_ns = int(timeout * 1e9)
    while True:
        await asyncio.sleep(min(0.25, timeout / 4))
        now = time.perf_counter_ns()
        for client in list(run.active):
            if client.inflight and now - client.t0 > limit_ns:
                run.timeouts += 1
                client._fail()


def _percentile(sorted_ns: list[int], q: float) -> float | None:
    if not sorted_ns:
        return None
    idx = min(len(sorted_ns) - 1, max(0, int(round(q * (len(sorted_ns) - 1)))))
    return sorted_ns[idx] / 1e6


async def run_load(
    host: str,
    port: int,
    bodies: list[bytes],
    concurrency: int,
    requests: int | None = None,
    duration: float | None = None,
    project_id: int = 1,
    public_key: str = "0123456789abcdef0123456789abcdef",
    headers: dict[str, str] | None = None,
    request_timeout: float = 30.0,
) -> dict[str, Any]:
    """Replay ``bodies`` as envelope POSTs over ``concurrency`` keep-alive connections.

    Must run on an asyncio event loop. Stops after ``requests`` requests or ``duration`` seconds
    (at least one must be given). A request unanswered after ``request_timeout`` seconds closes
    its connection and counts as an error (and in ``timeouts``). Returns a dict of figures (see
    the module docstring).
    """
    _check_loopback(host)
    if requests is None and duration is None:
        raise ValueError("give requests or duration")
    if not bodies:
        raise ValueError("no bodies")
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    reqs = build_requests(host, port, bodies, project_id, public_key, headers)
    # asyncio reads with a 256 KiB buffer; make glibc serve it from the heap, not mmap (see
    # floor_server.raise_malloc_threshold): ~11 us per response otherwise on this machine class.
    block = bytearray(4 * 1024 * 1024)
    del block
    run = _Run(reqs, requests, duration)
    loop = asyncio.get_running_loop()
    clients = [await _connect(loop, host, port, run) for _ in range(concurrency)]

    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        if duration is not None:
            run.deadline = t0 + duration
        run.t_last = t0
        watchdog = asyncio.ensure_future(_watchdog(run, request_timeout))
        try:
            await asyncio.gather(*(_connection_worker(loop, host, port, run, c) for c in clients))
        finally:
            watchdog.cancel()
        t1 = max(run.t_last, t0)
        cpu1 = time.process_time()
    finally:
        if gc_was_enabled:
            gc.enable()

    elapsed = max(t1 - t0, 1e-9)
    lat = sorted(run.lat)
    responses = len(lat)
    accepted = run.status.get(200, 0)
    return {
        "concurrency": concurrency,
        "requests_sent": run.next,
        "responses": responses,
        "accepted": accepted,
        "status": {str(k): v for k, v in sorted(run.status.items())},
        "errors": run.errors,
        "timeouts": run.timeouts,
        "reconnects": run.reconnects,
        "elapsed_s": round(elapsed, 4),
        "accepted_per_s": round(accepted / elapsed, 1),
        "responses_per_s": round(responses / elapsed, 1),
        "p50_ms": _round(_percentile(lat, 0.50)),
        "p90_ms": _round(_percentile(lat, 0.90)),
        "p99_ms": _round(_percentile(lat, 0.99)),
        "max_ms": _round(lat[-1] / 1e6 if lat else None),
        "client_cpu_s": round(cpu1 - cpu0, 4),
        "client_cpu_util": round((cpu1 - cpu0) / elapsed, 3),
        "bodies_reused": run.next > len(bodies),
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--project", type=int, default=1)
    p.add_argument("--key", default="0123456789abcdef0123456789abcdef")
    p.add_argument("--requests", type=int, default=None, help="total requests (default 20000)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--bodies", type=int, default=None, help="distinct bodies to pre-build")
    p.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    args = p.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    _check_loopback(args.host)
    if args.requests is None and args.duration is None:
        args.requests = 20_000
    nbodies = args.bodies or args.requests or 20_000
    if args.requests is not None:
        nbodies = min(nbodies, args.requests)

    if _BENCH_DIR not in sys.path:
        sys.path.insert(0, _BENCH_DIR)
    from envelopes import make_bodies, request_headers  # noqa: PLC0415

    headers = request_headers(args.key, args.project)
    bodies = make_bodies(nbodies, args.key, args.project)
    result = asyncio.run(
        run_load(
            args.host,
            args.port,
            bodies,
            args.concurrency,
            requests=args.requests,
            duration=args.duration,
            project_id=args.project,
            public_key=args.key,
            headers=headers,
            request_timeout=args.timeout,
        )
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
