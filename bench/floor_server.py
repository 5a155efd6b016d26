"""The "floor": the least an envelope endpoint must do per request, to compare real servers against.

What it measures: nothing by itself; it is the reference server for ``bench/bench_frontdoor.py``.
Per request it does only the unavoidable work: parse HTTP/1.1 with ``httptools`` over anyio socket
streams (backend trio or asyncio), read the body, decompress it (``br``, ``gzip``, ``deflate``,
``zstd`` or none), split the envelope (header line, item headers, ``orjson.loads`` of each JSON
header and of the event payload), check the ``X-Sentry-Auth`` key (or ``?sentry_key=``) against
the project's keys, and answer ``200 {"id":"<event_id>"}`` keeping the connection alive. No
queue, no storage, no limits beyond a body cap: it is a benchmark floor, not a server to deploy.
``--backend asyncio-protocol`` runs the same handler on asyncio's callback ``Protocol`` without
anyio, as a reference for what anyio's stream layer costs. ``--trivial`` skips decompression,
parsing and auth (reads the body, answers ``200 {}``): the ceiling of the HTTP layer.

Run::

    python bench/floor_server.py --port 8123 [--backend trio|asyncio|asyncio-protocol] [--cpu 0] \
        [--project 1] [--key 0123456789abcdef0123456789abcdef] [--trivial]

At startup it frees one 4 MiB block so that glibc's dynamic mmap threshold rises above asyncio's
256 KiB socket read buffer (see ``raise_malloc_threshold``; ``--no-malloc-warmup`` to skip): without
it, each 256 KiB ``recv`` costs an mmap/munmap pair, which is avoidable, so not part of a floor.

It prints ``READY <port>`` on stdout once listening on 127.0.0.1 (``--port 0`` picks a free port)
and runs until SIGINT/SIGTERM. It also answers ``GET /api/relay/healthcheck/ready/`` with 200.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import zlib

import anyio
import brotli
import httptools
import orjson
import zstandard

DEFAULT_KEY = "0123456789abcdef0123456789abcdef"
MAX_BODY = 20 * 1024 * 1024

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Payload Too Large",
    415: b"Unsupported Media Type",
}
_EVENT_TYPES = frozenset(("event", "transaction", "security", "raw_security"))
_zstd = zstandard.ZstdDecompressor()


def raise_malloc_threshold() -> None:
    """Free one 4 MiB block so glibc's dynamic mmap threshold rises above 256 KiB.

    Until then every ``recv(262144)`` (asyncio's transports read with a 256 KiB buffer) is a fresh
    mmap + mremap + munmap: ~11-14 us per read on this project's VMs, more than parsing the
    request. A process that has once freed a large block never pays it again; a benchmark that
    does not control this measures an accident of its allocation history.
    """
    block = bytearray(4 * 1024 * 1024)
    del block


def _response(status: int, body: bytes, keep_alive: bool) -> bytes:
    head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        status,
        _REASONS.get(status, b"Error"),
        len(body),
    )
    if not keep_alive:
        head += b"Connection: close\r\n"
    return head + b"\r\n" + body


class _Reject(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _decompress(body: bytes, encoding: bytes | None) -> bytes:
    if not encoding or encoding == b"identity":
        return body
    enc = encoding.strip().lower()
    try:
        if enc == b"br":
            return brotli.decompress(body)
        if enc in (b"gzip", b"x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if enc == b"deflate":
            return zlib.decompress(body)
        if enc == b"zstd":
            return _zstd.decompress(body, max_output_size=MAX_BODY * 10)
    except Exception as exc:  # noqa: BLE001 - any codec error is the client's fault
        raise _Reject(400, f"cannot decode body: {exc}") from None
    raise _Reject(415, "unsupported content encoding")


def _parse_envelope(data: bytes) -> str | None:
    """Split the envelope, parse every header and event payload; return the event id."""
    end = len(data)
    nl = data.find(b"\n")
    if nl == -1:
        nl = end
    try:
        headers = orjson.loads(data[:nl])
        pos = nl + 1
        event_id = headers.get("event_id")
        items = 0
        while pos < end:
            nl = data.find(b"\n", pos)
            if nl == -1:
                nl = end
            if nl == pos:  # blank line (trailing newline)
                pos += 1
                continue
            item = orjson.loads(data[pos:nl])
            pos = nl + 1
            length = item.get("length")
            if length is None:
                nl = data.find(b"\n", pos)
                if nl == -1:
                    nl = end
                payload = data[pos:nl]
                pos = nl + 1
            else:
                payload = data[pos : pos + length]
                if len(payload) != length:
                    raise _Reject(400, "item payload shorter than its length")
                pos += length
                if pos < end and data[pos] == 0x0A:
                    pos += 1
            if item.get("type") in _EVENT_TYPES:
                event = orjson.loads(payload)
                if event_id is None and isinstance(event, dict):
                    event_id = event.get("event_id")
            items += 1
    except orjson.JSONDecodeError as exc:
        raise _Reject(400, f"invalid envelope: {exc}") from None
    except AttributeError:  # a header line that is JSON but not an object
        raise _Reject(400, "invalid envelope: header is not an object") from None
    return event_id if isinstance(event_id, str) else None


def _key_from_auth(auth: bytes | None, url: bytes) -> bytes | None:
    if auth:
        i = auth.find(b"sentry_key=")
        if i != -1:
            j = auth.find(b",", i)
            return auth[i + 11 : j if j != -1 else len(auth)].strip()
    q = url.find(b"sentry_key=")
    if q != -1:
        j = url.find(b"&", q)
        return url[q + 11 : j if j != -1 else len(url)]
    return None


class _Connection:
    """httptools callbacks for one connection; completed responses collect in ``out``."""

    __slots__ = ("parser", "url", "auth", "encoding", "body", "body_len", "out", "close", "server")

    def __init__(self, server: FloorServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.out: list[bytes] = []
        self.close = False
        self.on_message_begin()

    # httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.auth = None
        self.encoding = None
        self.body: list[bytes] = []
        self.body_len = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        n = name.lower()
        if n == b"x-sentry-auth":
            self.auth = value
        elif n == b"content-encoding":
            self.encoding = value

    def on_body(self, body: bytes) -> None:
        self.body_len += len(body)
        if self.body_len > MAX_BODY:
            raise _Reject(413, "body too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        keep = self.parser.should_keep_alive()
        status, payload = self.server.handle(self)
        if not keep:
            self.close = True
        self.out.append(_response(status, payload, keep))


class FloorServer:
    def __init__(self, keys: dict[int, set[bytes]], trivial: bool = False) -> None:
        self.keys = keys
        self.trivial = trivial
        self.requests = 0

    def handle(self, conn: _Connection) -> tuple[int, bytes]:
        self.requests += 1
        url = conn.url
        method = conn.parser.get_method()
        if self.trivial:
            return 200, b"{}"
        path = url.split(b"?", 1)[0]
        if method == b"GET" and path == b"/api/relay/healthcheck/ready/":
            return 200, b'{"is_healthy":true}'
        parts = path.split(b"/")  # b"", b"api", b"<pid>", b"envelope", b""
        if (
            len(parts) < 4
            or parts[1] != b"api"
            or parts[3] != b"envelope"
            or not parts[2].isdigit()
        ):
            return 404, b'{"detail":"not found"}'
        if method != b"POST":
            return 405, b'{"detail":"method not allowed"}'
        try:
            key = _key_from_auth(conn.auth, url)
            if not key:
                return 401, b'{"detail":"missing authorization information"}'
            allowed = self.keys.get(int(parts[2]))
            if allowed is None or key not in allowed:
                return 403, b'{"detail":"invalid key"}'
            body = b"".join(conn.body) if len(conn.body) != 1 else conn.body[0]
            data = _decompress(body, conn.encoding)
            event_id = _parse_envelope(data)
        except _Reject as exc:
            return exc.status, orjson.dumps({"detail": exc.detail})
        if event_id is None:
            return 200, b"{}"
        return 200, b'{"id":"%s"}' % event_id.encode()

    async def serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        conn = _Connection(self)
        feed = conn.parser.feed_data
        receive = stream.receive
        send = stream.send
        try:
            while True:
                try:
                    data = await receive(65536)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return
                try:
                    feed(data)
                except httptools.HttpParserError as exc:
                    # A callback's exception reaches us wrapped, with the original as context.
                    cause = exc.__context__
                    if isinstance(cause, _Reject):
                        status, detail = cause.status, cause.detail
                    else:
                        status, detail = 400, "bad request"
                    conn.out.append(_response(status, orjson.dumps({"detail": detail}), False))
                    conn.close = True
                if conn.out:
                    out = conn.out[0] if len(conn.out) == 1 else b"".join(conn.out)
                    conn.out.clear()
                    try:
                        await send(out)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        return
                if conn.close:
                    return
        finally:
            await stream.aclose()


class _AsyncioProtocol:
    """``--backend asyncio-protocol``: the same work on asyncio's callback Protocol, no anyio.

    Not the like-for-like floor for an anyio server; it shows what anyio's stream layer costs.
    """

    def __init__(self, server: FloorServer) -> None:
        self.conn = _Connection(server)
        self.transport = None

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        try:
            conn.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            status, detail = (
                (cause.status, cause.detail) if isinstance(cause, _Reject) else (400, "bad request")
            )
            conn.out.append(_response(status, orjson.dumps({"detail": detail}), False))
            conn.close = True
        if conn.out:
            self.transport.write(conn.out[0] if len(conn.out) == 1 else b"".join(conn.out))
            conn.out.clear()
        if conn.close:
            self.transport.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc) -> None:  # noqa: ANN001
        self.transport = None

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


def _serve_asyncio_protocol(args: argparse.Namespace, server: FloorServer) -> None:
    import asyncio

    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(
            lambda: _AsyncioProtocol(server), "127.0.0.1", args.port, backlog=1024
        )
        port = srv.sockets[0].getsockname()[1]
        print(f"READY {port}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with srv:
            await stop.wait()

    asyncio.run(main())


async def _serve(args: argparse.Namespace) -> None:
    keys = {args.project: {k.encode() for k in (args.key or [DEFAULT_KEY])}}
    server = FloorServer(keys, trivial=args.trivial)
    listener = await anyio.create_tcp_listener(
        local_host="127.0.0.1", local_port=args.port, backlog=1024
    )
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    print(f"READY {port}", flush=True)
    async with anyio.create_task_group() as tg:

        async def _signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(_signals)
        await listener.serve(server.serve_connection, task_group=tg)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument(
        "--backend",
        choices=("trio", "asyncio", "asyncio-protocol"),
        default="trio",
        help="anyio backend; asyncio-protocol = plain asyncio Protocol without anyio (reference)",
    )
    p.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    p.add_argument("--project", type=int, default=1)
    p.add_argument("--key", action="append", help="accepted public key (repeatable)")
    p.add_argument("--trivial", action="store_true", help="read the body and answer 200 {} only")
    p.add_argument(
        "--no-malloc-warmup",
        action="store_true",
        help="skip raise_malloc_threshold() (shows what 256 KiB socket reads cost without it)",
    )
    args = p.parse_args(argv)
    if not args.no_malloc_warmup:
        raise_malloc_threshold()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    try:
        if args.backend == "asyncio-protocol":
            keys = {args.project: {k.encode() for k in (args.key or [DEFAULT_KEY])}}
            _serve_asyncio_protocol(args, FloorServer(keys, trivial=args.trivial))
        else:
            anyio.run(_serve, args, backend=args.backend)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
