"""A small, hardened HTTP/1.1 server on the httptools parser over anyio streams.

Why our own: the front door's cost is dominated by the HTTP layer, and a thin layer on httptools
runs several times faster on anyio/trio than general-purpose servers (see bench/README.md).

What it guarantees, each with a test in tests/test_httpserver.py:
- at most ``max_connections`` connections are served at once (further ones wait in the backlog);
- request line + headers are limited to ``max_header_bytes`` (414/431, also while a header line is
  still arriving), bodies to the limit the handler chooses per request, counted *after* decoding
  ``Content-Encoding`` and on the wire (413, answered as soon as the limit is passed);
- slow clients: the request line and headers must arrive within ``read_timeout`` in total, each
  piece of a body within ``read_timeout`` of the previous one (408); an idle keep-alive connection
  is closed after ``keepalive_timeout``;
- keep-alive and pipelining (at most ``max_pipelined_requests`` parsed ahead, more is 400), chunked
  bodies, ``Expect: 100-continue``; protocol upgrades (and CONNECT) are refused with 400;
- a request refused while it is read (malformed HTTP, a limit, ``body_limit`` raising, a body
  found corrupt as it arrives) is answered at once, after the requests before it, and then the
  connection closes: half-closed first, its input drained for up to a second, so that the client
  gets to read the answer rather than a reset;
- an error accepting a connection (such as running out of file descriptors), or an exception
  escaping the handler's ``error`` or a malformed ``Response``, is logged and not fatal to the server;
- graceful shutdown: stop accepting, let requests in progress finish, close idle connections.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import httptools
import sniffio
from anyio.abc import SocketAttribute, SocketStream

from .decoding import BodyDecoder
from .errors import BadRequest, PayloadTooLarge, RequestError

__all__ = ["Request", "Response", "Handler", "HttpServer", "HttpLimits"]

log = logging.getLogger("minisentry.http")

_REASONS = {
    100: "Continue", 200: "OK", 204: "No Content", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 413: "Content Too Large",
    414: "URI Too Long", 415: "Unsupported Media Type", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable",
}


@dataclass(slots=True)
class Request:
    """A parsed request. Header names are lowercase; a repeated header keeps its last value."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    remote_addr: str | None = None
    body: bytes = b""
    keep_alive: bool = True


@dataclass(slots=True)
class Response:
    """A response to send; ``headers`` are extra headers beyond Content-Length/Connection."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


class Handler(Protocol):
    """What the server calls. ``body_limit`` runs once headers are in (before the body is read)."""

    def body_limit(self, request: Request) -> int:
        """Return the maximum decoded body size for this request; may raise RequestError."""

    async def handle(self, request: Request) -> Response:
        """Answer a complete request; RequestError becomes an error response via ``error``."""

    def error(self, exc: RequestError, request: Request | None) -> Response:
        """Build the response for a refused request."""


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Connection and request limits; see the module docstring."""

    max_connections: int = 1024
    max_header_bytes: int = 65536
    max_pipelined_requests: int = 64
    read_timeout: float = 30.0
    keepalive_timeout: float = 75.0


class _Fatal(Exception):
    """The connection cannot continue; answer ``status`` (via ``exc`` for ``request`` if given) and close."""

    def __init__(self, status: int, detail: str, request: Request | None = None,
                 exc: RequestError | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.request = request
        self.exc = exc


class _Parse:
    """httptools callbacks for one connection; collects complete requests. Never raises."""

    __slots__ = ("handler", "limits", "remote", "url", "headers", "header_bytes", "request", "decoder",
                 "ready", "error", "continue_wanted", "in_message", "parser", "body_limit", "wire_bytes",
                 "header_wire", "header_deadline")

    def __init__(self, handler: Handler, limits: HttpLimits, remote: str | None) -> None:
        self.handler = handler
        self.limits = limits
        self.remote = remote
        self.ready: deque[tuple[Request, RequestError | None]] = deque()
        self.error: _Fatal | None = None
        self.in_message = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.header_bytes = 0
        self.request: Request | None = None
        self.decoder: BodyDecoder | RequestError | None = None
        self.body_limit = 0
        self.wire_bytes = 0
        self.continue_wanted = False
        # Bytes of a header section that spans several receives, and the time it must be complete by.
        self.header_wire = 0
        self.header_deadline: float | None = None

    def on_message_begin(self) -> None:
        self.in_message = True
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.header_bytes += len(url)
        if self.header_bytes > self.limits.max_header_bytes and self.error is None:
            self.error = _Fatal(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.limits.max_header_bytes:
            if self.error is None:
                self.error = _Fatal(431, "request headers too large")
            return
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self.error is not None:
            return
        path, _, query = self.url.decode("latin-1").partition("?")
        request = Request(self._method, path, query, self.headers, self.remote,
                          keep_alive=self.parser.should_keep_alive())
        self.request = request
        try:
            limit = self.body_limit = self.handler.body_limit(request)
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise_too_large(limit)
            self.decoder = BodyDecoder(request.headers.get("content-encoding"), limit)
            if request.headers.get("expect", "").lower() == "100-continue":
                self.continue_wanted = True
        except RequestError as exc:
            # Refused before the body: answer now and close, rather than read a body we won't use.
            self.decoder = exc
            self.error = _Fatal(exc.status, exc.detail, request, exc)

    @property
    def _method(self) -> str:
        return self.parser.get_method().decode("latin-1")

    def on_body(self, chunk: bytes) -> None:
        decoder = self.decoder
        if not isinstance(decoder, BodyDecoder):
            return
        # Bound the wire bytes too: a compressed stream can carry empty blocks that decode to nothing.
        self.wire_bytes += len(chunk)
        try:
            if self.wire_bytes > self.body_limit:
                raise_too_large(self.body_limit)
            decoder.feed(chunk)
        except RequestError as exc:
            # Answer now and close, rather than read (maybe endlessly) the rest of a refused body.
            self.decoder = exc
            if self.error is None:
                self.error = _Fatal(exc.status, exc.detail, self.request, exc)

    def on_message_complete(self) -> None:
        self.in_message = False
        request, decoder = self.request, self.decoder
        if request is None or self.error is not None:
            # Either the headers were refused (already answered) or the connection is failing.
            return
        try:
            request.body = decoder.finish() if decoder is not None else b""
            self.ready.append((request, None))
        except RequestError as exc:
            self.ready.append((request, exc))
        if len(self.ready) > self.limits.max_pipelined_requests:
            self.ready.clear()
            self.error = _Fatal(400, "too many pipelined requests")


def raise_too_large(limit: int) -> None:
    """Raise the PayloadTooLarge for a body over ``limit`` bytes."""
    raise PayloadTooLarge(f"request body exceeds {limit} bytes")


def _direct_socket(stream: SocketStream) -> socket.socket | None:
    """The plain non-blocking socket under ``stream`` when writing to it directly is safe, else None.

    On trio, anyio's stream sends straight through such a socket and never holds unsent bytes
    between calls, so a direct ``send`` keeps the order. Under asyncio the transport owns the
    socket and its write buffer: never write past it there.
    """
    if sniffio.current_async_library() != "trio":
        return None
    try:
        raw = stream.extra(SocketAttribute.raw_socket)
    except (OSError, anyio.TypedAttributeLookupError):
        return None
    return raw if type(raw) is socket.socket else None


def _encode_response(response: Response, keep_alive: bool, date: bytes) -> bytes:
    status = response.status
    head = [
        b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, "Unknown").encode()),
        date,
        b"Content-Type: %s\r\n" % response.content_type.encode("latin-1", "replace"),
        b"Content-Length: %d\r\n" % len(response.body),
    ]
    if not keep_alive:
        head.append(b"Connection: close\r\n")
    for name, value in response.headers:
        # "replace": a header value may quote client input (an error detail) beyond latin-1.
        head.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
    head.append(b"\r\n")
    return b"".join(head) + response.body


class HttpServer:
    """Serve one handler on a TCP listener until ``shutdown()``.

    ``serve`` blocks (it is a long-running task): start it with ``await tg.start(server.serve, ...)``;
    it reports the bound port through ``task_status``. Resource handling: every connection is closed
    on return; at most ``limits.max_connections`` are open at once.
    """

    def __init__(self, handler: Handler, limits: HttpLimits) -> None:
        self.handler = handler
        self.limits = limits
        self.port: int | None = None
        self.active_requests = 0
        self._stopping = anyio.Event()
        self._idle_scopes: set[anyio.CancelScope] = set()
        self._date = b""
        self._date_second = 0

    def shutdown(self) -> None:
        """Stop accepting, close idle connections; requests in progress finish. Never blocks."""
        self._stopping.set()
        for scope in list(self._idle_scopes):
            scope.cancel()

    async def serve(self, host: str, port: int, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        """Listen on ``host:port`` and serve until shutdown; then wait for open connections to end."""
        multi = await anyio.create_tcp_listener(local_host=host, local_port=port, backlog=1024)
        limiter = anyio.Semaphore(self.limits.max_connections)
        self.port = multi.extra(SocketAttribute.local_port)
        task_status.started(self.port)
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as accept_scope:
                tg.start_soon(self._cancel_on_stop, accept_scope)
                async with multi, anyio.create_task_group() as accept_group:
                    # A host name may resolve to several addresses (IPv4 and IPv6): accept on each.
                    for listener in multi.listeners:
                        accept_group.start_soon(self._accept_loop, listener, limiter, tg)

    async def _accept_loop(self, listener, limiter: anyio.Semaphore, tg) -> None:
        while True:
            await limiter.acquire()
            try:
                stream = await listener.accept()
            except OSError as exc:
                # E.g. EMFILE: out of file descriptors. Back off instead of taking the server down.
                limiter.release()
                log.warning("accepting a connection failed: %s", exc)
                await anyio.sleep(0.1)
                continue
            except BaseException:
                limiter.release()
                raise
            tg.start_soon(self._connection, stream, limiter)

    async def _cancel_on_stop(self, scope: anyio.CancelScope) -> None:
        await self._stopping.wait()
        scope.cancel()

    def _date_header(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = b"Date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode() + b"\r\n"
        return self._date

    async def _connection(self, stream: SocketStream, limiter: anyio.Semaphore) -> None:
        try:
            async with stream:
                await self._serve_connection(stream)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError):
            pass
        except Exception:
            # A bug answering one connection (say, in the handler's ``error``) must not stop the server.
            log.exception("connection failed")
        finally:
            limiter.release()

    async def _serve_connection(self, stream: SocketStream) -> None:
        try:
            remote = stream.extra(SocketAttribute.remote_address)
            remote_addr = remote[0] if isinstance(remote, tuple) else None
        except (OSError, anyio.TypedAttributeLookupError):
            remote_addr = None
        raw = _direct_socket(stream)
        state = _Parse(self.handler, self.limits, remote_addr)
        parser = httptools.HttpRequestParser(state)
        state.parser = parser
        limits = self.limits
        while True:
            if state.ready:
                request, refused = state.ready.popleft()
                if refused is not None:
                    response = self.handler.error(refused, request)
                else:
                    self.active_requests += 1
                    try:
                        response = await self.handler.handle(request)
                    except RequestError as exc:
                        response = self.handler.error(exc, request)
                    except Exception:
                        log.exception("unhandled error answering %s %s", request.method, request.path)
                        response = self.handler.error(RequestError("internal error"), request)
                        response.status = 500
                    finally:
                        self.active_requests -= 1
                # After the handler: a shutdown during it must still say "Connection: close".
                keep_alive = request.keep_alive and not self._stopping.is_set()
                sent = await self._send(stream, _encode_response(response, keep_alive, self._date_header()), raw)
                if not keep_alive or not sent:
                    return
                continue
            if state.error is not None:
                await self._send_fatal(stream, state.error)
                return
            idle = not state.in_message
            if idle:
                if self._stopping.is_set():
                    return
                deadline = anyio.current_time() + limits.keepalive_timeout
            elif state.request is None:
                # Request line and headers still arriving: one deadline for all of them (slowloris).
                if state.header_deadline is None:
                    state.header_deadline = anyio.current_time() + limits.read_timeout
                deadline = state.header_deadline
            else:
                if state.continue_wanted:
                    # The body is still to come and nothing was refused: ask for it.
                    state.continue_wanted = False
                    if not await self._send(stream, b"HTTP/1.1 100 Continue\r\n\r\n"):
                        return
                deadline = anyio.current_time() + limits.read_timeout
            data = await self._receive(stream, deadline, idle)
            if data is None:
                if not idle:
                    await self._send_fatal(stream, _Fatal(408, "request not received in time"))
                return
            headers = state.headers
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                # The upgrade request was parsed as complete: refuse it instead of answering it.
                if state.ready and state.ready[-1][0] is state.request:
                    state.ready.pop()
                if state.error is None:
                    state.error = _Fatal(400, "protocol upgrades are not supported", state.request)
            except httptools.HttpParserError as exc:
                if state.error is None:
                    state.error = _Fatal(400, f"malformed HTTP request: {exc}")
            if state.request is None and state.in_message and state.headers is headers and not idle:
                # All of ``data`` belongs to one unfinished header section, which httptools buffers
                # until a header line ends (on_header cannot count it yet): bound it here.
                state.header_wire += len(data)
                if state.header_wire > limits.max_header_bytes and state.error is None:
                    state.error = _Fatal(431, "request headers too large")

    async def _send(self, stream: SocketStream, data: bytes, raw: socket.socket | None = None) -> bool:
        """Send ``data``; False if the client did not take it within ``read_timeout`` (then close).

        With ``raw`` (see :func:`_direct_socket`) the answer is first offered to the socket itself:
        a small answer nearly always fits its buffer at once, which skips the stream's layers and
        the timeout scope. Raises OSError if the connection broke.
        """
        if raw is not None:
            try:
                sent = raw.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent == len(data):
                return True
            data = data[sent:]
        # A bare CancelScope: cheaper than fail_after's context-manager generator on the hot path.
        with anyio.CancelScope(deadline=anyio.current_time() + self.limits.read_timeout):
            await stream.send(data)
            return True
        return False

    async def _receive(self, stream: SocketStream, deadline: float, idle: bool) -> bytes | None:
        """Receive one chunk; None at ``deadline``, end of stream, or (when idle) shutdown."""
        scope = anyio.CancelScope(deadline=deadline)
        if idle:
            self._idle_scopes.add(scope)
        try:
            with scope:
                return await stream.receive(65536)
        except anyio.EndOfStream:
            return None
        finally:
            self._idle_scopes.discard(scope)
        return None

    async def _send_fatal(self, stream: SocketStream, error: _Fatal) -> None:
        exc = error.exc
        if exc is None:
            exc = BadRequest(error.detail)
            exc.status = error.status
        response = self.handler.error(exc, error.request)
        response.status = error.status
        with anyio.move_on_after(1.0):
            await stream.send(_encode_response(response, False, self._date_header()))
            # Closing with unread input (say, the rest of a refused body) makes the kernel reset the
            # connection, and the client may never read the answer: half-close and drain instead.
            await stream.send_eof()
            while await stream.receive(65536):
                pass
