"""HttpServer behaviour over real sockets: every promise of the module docstring, on both backends.

Clients here write raw bytes with ``anyio.connect_tcp`` and parse what comes back with httptools'
response parser, so framing errors (a wrong Content-Length, a missing response) fail the tests.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

import anyio
import brotli
import httptools
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minisentry import httpserver
from minisentry.errors import AuthForbidden, NotFound, RequestError
from minisentry.httpserver import HttpLimits, HttpServer, Request, Response

pytestmark = pytest.mark.anyio

LIMIT = 1024  # the test handler's body limit (decoded bytes)
GUARD = 10.0  # hang guard for anything that must happen "promptly"


# -- the handler under the server -------------------------------------------------------------------


class EchoHandler:
    """Echoes the decoded body; special paths raise, refuse or block.

    ``/raise`` raises NotFound, ``/crash`` raises RuntimeError, ``/refuse`` is refused by
    ``body_limit``, ``/block`` waits on ``gate`` (``entered`` is set when it starts), ``/unicode``
    raises an error whose detail (echoed in a header, as the relay does) is not latin-1,
    ``/bad-response`` returns a Response the server cannot encode.
    """

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.seen: list[Request] = []
        self.errors: list[tuple[RequestError, Request | None]] = []
        self.gate = anyio.Event()
        self.entered = anyio.Event()

    def body_limit(self, request: Request) -> int:
        if request.path == "/refuse":
            raise AuthForbidden("refused by body_limit")
        return self.limit

    async def handle(self, request: Request) -> Response:
        self.seen.append(request)
        if request.path == "/raise":
            raise NotFound("nothing here")
        if request.path == "/crash":
            raise RuntimeError("handler bug")
        if request.path == "/unicode":
            raise NotFound("no route for \u6f22\u5b57")
        if request.path == "/bad-response":
            return Response(200, "a str, not bytes")  # type: ignore[arg-type]
        if request.path == "/block":
            self.entered.set()
            await self.gate.wait()
        return Response(200, request.body, [("X-Path", request.path), ("X-Method", request.method)],
                        content_type="application/octet-stream")

    def error(self, exc: RequestError, request: Request | None) -> Response:
        self.errors.append((exc, request))
        body = json.dumps({"detail": exc.detail}).encode()
        return Response(exc.status, body, [("X-Error", type(exc).__name__), ("X-Detail", exc.detail)])

    @property
    def paths(self) -> list[str]:
        return [request.path for request in self.seen]


@asynccontextmanager
async def serving(handler: EchoHandler | None = None, **limits: float) -> AsyncIterator[HttpServer]:
    """Run an HttpServer on an ephemeral port; on a clean exit, shut it down and require ``serve`` to return."""
    server = HttpServer(handler or EchoHandler(), HttpLimits(**limits))
    returned = anyio.Event()

    async def run(*, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        await server.serve("127.0.0.1", 0, task_status=task_status)
        returned.set()

    async with anyio.create_task_group() as tg:
        await tg.start(run)
        try:
            yield server
        except BaseException:
            tg.cancel_scope.cancel()
            raise
        server.shutdown()
        with anyio.fail_after(GUARD):
            await returned.wait()


# -- the raw client ---------------------------------------------------------------------------------


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class Client:
    """One raw connection; ``response()`` parses exactly one response, however the bytes arrive."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.parser = httptools.HttpResponseParser(self)
        self.responses: deque[Resp] = deque()
        self.in_message = False
        self.closed = False
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.in_message = True
        self._headers, self._body = {}, []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.in_message = False
        self.responses.append(Resp(self.parser.get_status_code(), self._headers, b"".join(self._body),
                                   self.parser.should_keep_alive()))

    async def send(self, data: bytes) -> bool:
        """Send; False if the server already closed the connection (which some tests expect)."""
        try:
            await self.stream.send(data)
            return True
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False

    async def fill(self) -> bool:
        """Receive and parse one chunk; False once the connection is closed."""
        try:
            data = await self.stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.closed = True
            return False
        self.parser.feed_data(data)
        return True

    async def response(self, timeout: float = GUARD) -> Resp:
        with anyio.fail_after(timeout):
            while not self.responses:
                if not await self.fill():
                    raise AssertionError("connection closed before a complete response")
        resp = self.responses.popleft()
        assert resp.status == 100 or int(resp.headers["content-length"]) == len(resp.body)
        return resp

    async def expect_closed(self, timeout: float = GUARD) -> None:
        """The server closes the connection without sending anything more."""
        with anyio.fail_after(timeout):
            while await self.fill():
                pass
        assert not self.responses and not self.in_message, "unexpected bytes before close"

    async def aclose(self) -> None:
        await self.stream.aclose()


@asynccontextmanager
async def connect(server: HttpServer) -> AsyncIterator[Client]:
    stream = await anyio.connect_tcp("127.0.0.1", server.port)
    async with stream:
        yield Client(stream)


def req(method: str = "GET", path: str = "/", body: bytes = b"", headers: tuple[tuple[str, str], ...] = (),
        version: str = "1.1", length: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: test"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length and (body or method in ("POST", "PUT")):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*parts: bytes, end: bool = True) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return out + (b"0\r\n\r\n" if end else b"")


CHUNKED = (("Transfer-Encoding", "chunked"),)


async def roundtrip(server: HttpServer, data: bytes) -> Resp:
    async with connect(server) as client:
        await client.send(data)
        return await client.response()


# -- basics, keep-alive, pipelining -----------------------------------------------------------------


async def test_get_and_post_answer_200_with_exact_content_length() -> None:
    handler = EchoHandler()
    async with serving(handler) as server, connect(server) as client:
        await client.send(req("GET", "/hello?a=1&b=2", headers=(("X-Custom", "Value"),)))
        resp = await client.response()
        assert resp.status == 200 and resp.body == b"" and resp.headers["content-length"] == "0"
        assert resp.headers["x-path"] == "/hello" and "date" in resp.headers and resp.keep_alive

        await client.send(req("POST", "/echo", b'{"k": "v"}'))
        resp = await client.response()
        assert resp.status == 200 and resp.body == b'{"k": "v"}' and resp.headers["content-length"] == "10"
        assert resp.headers["x-method"] == "POST"

    first = handler.seen[0]
    assert (first.method, first.path, first.query) == ("GET", "/hello", "a=1&b=2")
    assert first.headers["x-custom"] == "Value" and first.headers["host"] == "test"
    assert first.remote_addr == "127.0.0.1" and first.keep_alive


async def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    handler = EchoHandler()
    async with serving(handler) as server, connect(server) as client:
        for i in range(10):
            body = b"x" * i
            await client.send(req("POST", f"/n{i}", body))
            resp = await client.response()
            assert (resp.status, resp.body, resp.headers["x-path"]) == (200, body, f"/n{i}")
            assert "connection" not in resp.headers
    assert handler.paths == [f"/n{i}" for i in range(10)]


@pytest.mark.parametrize("request_bytes", [
    req("GET", "/", headers=(("Connection", "close"),)),
    req("GET", "/", version="1.0"),
    req("POST", "/", b"abc", version="1.0"),
], ids=["connection-close", "http10", "http10-post"])
async def test_connection_closes_after_response_when_not_keep_alive(request_bytes: bytes) -> None:
    async with serving() as server, connect(server) as client:
        await client.send(request_bytes)
        resp = await client.response()
        assert resp.status == 200 and resp.headers["connection"] == "close" and not resp.keep_alive
        await client.expect_closed()


async def test_http10_keep_alive_connection_stays_open() -> None:
    async with serving() as server, connect(server) as client:
        for _ in range(2):
            await client.send(req("GET", "/", version="1.0", headers=(("Connection", "keep-alive"),)))
            assert (await client.response()).status == 200


async def test_answers_larger_than_the_socket_buffer_arrive_whole_and_in_order() -> None:
    """A big answer only partly fits the socket at once (trio sends it directly first): the rest
    follows before the next pipelined answer, whatever the pace of the reader."""
    big = 8 * 1024 * 1024
    handler = EchoHandler(limit=2 * big)
    async with serving(handler) as server, connect(server) as client:
        first, second = bytes(range(256)) * (big // 256), b"second" * 1000
        await client.send(req("POST", "/big", first) + req("POST", "/small", second))
        await anyio.sleep(0.3)  # let the server fill the socket and wait for room
        with anyio.fail_after(GUARD):
            one, two = await client.response(), await client.response()
        assert (one.headers["x-path"], one.body == first) == ("/big", True)
        assert (two.headers["x-path"], two.body) == ("/small", second)


async def test_pipelined_requests_answered_in_order() -> None:
    handler = EchoHandler()
    async with serving(handler) as server, connect(server) as client:
        burst = b"".join(req("POST", f"/p{i}", b"body%d" % i) if i % 2 else req("GET", f"/p{i}")
                         for i in range(5))
        await client.send(burst)
        for i in range(5):
            resp = await client.response()
            assert resp.status == 200 and resp.headers["x-path"] == f"/p{i}"
            assert resp.body == (b"body%d" % i if i % 2 else b"")
        # the connection is still good afterwards
        await client.send(req("GET", "/after"))
        assert (await client.response()).headers["x-path"] == "/after"


async def test_too_many_pipelined_requests_get_400_and_close() -> None:
    handler = EchoHandler()
    async with serving(handler, max_pipelined_requests=4) as server, connect(server) as client:
        await client.send(b"".join(req("GET", f"/p{i}") for i in range(20)))
        statuses = []
        while True:
            resp = await client.response()
            statuses.append(resp.status)
            if resp.status != 200:
                break
        assert statuses[-1] == 400 and len(statuses) < 20
        await client.expect_closed()
    assert len(handler.seen) < 20


# -- bodies: chunked and Content-Encoding -----------------------------------------------------------


async def test_chunked_body_is_reassembled_across_sends() -> None:
    async with serving() as server, connect(server) as client:
        await client.send(req("POST", "/c", headers=CHUNKED, length=False))
        for part in (b"hello ", b"chunked ", b"world"):
            await client.send(chunked(part, end=False))
        await client.send(b"0\r\n\r\n")
        resp = await client.response()
        assert resp.status == 200 and resp.body == b"hello chunked world"
        # and in one send, followed by a second request on the same connection
        await client.send(req("POST", "/c", chunked(b"a", b"bc", b"def"), CHUNKED, length=False) + req("GET", "/next"))
        assert (await client.response()).body == b"abcdef"
        assert (await client.response()).headers["x-path"] == "/next"


PAYLOAD = b'{"message": "hello", "extra": "' + b"x" * 300 + b'"}'


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


ENCODINGS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "deflate-raw": _raw_deflate,
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


@pytest.mark.parametrize("name", list(ENCODINGS))
async def test_content_encoding_is_decoded_before_the_handler(name: str) -> None:
    encoded = ENCODINGS[name](PAYLOAD)
    header = (("Content-Encoding", name.removesuffix("-raw")),)
    async with serving() as server, connect(server) as client:
        await client.send(req("POST", "/e", encoded, header))
        resp = await client.response()
        assert resp.status == 200 and resp.body == PAYLOAD
        # chunked and compressed, split mid-stream
        half = len(encoded) // 2
        await client.send(req("POST", "/e", chunked(encoded[:half], encoded[half:]), header + CHUNKED, length=False))
        resp = await client.response()
        assert resp.status == 200 and resp.body == PAYLOAD


async def test_unsupported_encoding_is_415_via_error() -> None:
    async with serving() as server:
        resp = await roundtrip(server, req("POST", "/", b"abc", (("Content-Encoding", "compress"),)))
        assert resp.status == 415 and resp.headers["x-error"] == "UnsupportedEncoding"


async def test_corrupt_gzip_is_400_via_error() -> None:
    async with serving() as server:
        resp = await roundtrip(server, req("POST", "/", b"\x1f\x8b not gzip at all", (("Content-Encoding", "gzip"),)))
        assert resp.status == 400 and resp.headers["x-error"] == "BadRequest"


# -- limits -----------------------------------------------------------------------------------------


async def test_headers_over_max_header_bytes_get_431_and_close() -> None:
    async with serving(max_header_bytes=2048) as server, connect(server) as client:
        headers = tuple((f"X-H{i}", "v" * 50) for i in range(60))
        await client.send(req("GET", "/", headers=headers))
        resp = await client.response()
        assert resp.status == 431 and resp.headers["connection"] == "close"
        await client.expect_closed()


async def test_one_endless_header_gets_431_before_it_ends() -> None:
    # httptools buffers a header until its line ends: the limit must hold for a header that never ends.
    async with serving(max_header_bytes=4096) as server, connect(server) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: test\r\nX-Big: ")
        for _ in range(64):
            if not await client.send(b"a" * 4096):
                break
        resp = await client.response()
        assert resp.status == 431
        await client.expect_closed()


async def test_long_url_gets_414() -> None:
    async with serving(max_header_bytes=2048) as server, connect(server) as client:
        await client.send(req("GET", "/" + "u" * 5000))
        resp = await client.response()
        assert resp.status == 414 and resp.headers["connection"] == "close"
        await client.expect_closed()


async def test_declared_content_length_over_limit_is_413_before_the_body() -> None:
    handler = EchoHandler()
    async with serving(handler) as server, connect(server) as client:
        # Only the headers are sent: the answer must not wait for the body.
        await client.send(b"POST /big HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1))
        resp = await client.response()
        assert resp.status == 413 and resp.headers["connection"] == "close"
        assert resp.headers["x-error"] == "PayloadTooLarge"
        await client.expect_closed()
    assert handler.seen == [] and handler.errors[0][1].path == "/big"


async def test_declared_content_length_at_limit_is_accepted() -> None:
    async with serving() as server:
        resp = await roundtrip(server, req("POST", "/", b"z" * LIMIT))
        assert resp.status == 200 and len(resp.body) == LIMIT


async def test_chunked_body_growing_past_the_limit_is_413_without_waiting_for_its_end() -> None:
    handler = EchoHandler()
    async with serving(handler) as server, connect(server) as client:
        await client.send(req("POST", "/grow", headers=CHUNKED, length=False))
        # The body never ends: the server must answer as soon as it passes the limit.
        for _ in range(8):
            if not await client.send(chunked(b"c" * 400, end=False)):
                break
        resp = await client.response()
        assert resp.status == 413 and resp.headers["connection"] == "close"
        await client.expect_closed()
    assert handler.seen == []


async def test_small_gzip_inflating_past_the_limit_is_413() -> None:
    bomb = gzip.compress(b"\0" * 200_000)
    assert len(bomb) < LIMIT
    handler = EchoHandler()
    async with serving(handler) as server, connect(server) as client:
        await client.send(req("POST", "/bomb", bomb, (("Content-Encoding", "gzip"),)))
        resp = await client.response()
        assert resp.status == 413
    assert handler.seen == []


def _empty_stored_blocks(count: int) -> bytes:
    """A raw deflate stream of ``count`` empty stored blocks and a final one: decodes to nothing."""
    return b"\x00\x00\x00\xff\xff" * count + b"\x01\x00\x00\xff\xff"


async def test_deflate_of_empty_blocks_over_the_limit_in_wire_bytes_is_413() -> None:
    assert zlib.decompress(_empty_stored_blocks(1000), -15) == b""
    header = (("Content-Encoding", "deflate"),)
    async with serving() as server:
        small = await roundtrip(server, req("POST", "/", _empty_stored_blocks(10), header))
        assert small.status == 200 and small.body == b""
        wire = _empty_stored_blocks(1000)  # ~5 KB on the wire, nothing decoded
        resp = await roundtrip(server, req("POST", "/", chunked(wire[:3000], wire[3000:]), header + CHUNKED, length=False))
        assert resp.status == 413


# -- malformed and refused requests -----------------------------------------------------------------


@pytest.mark.parametrize("garbage", [
    b"GARBAGE\r\n\r\n",
    b"NOTAMETHOD / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  # a TLS ClientHello
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
], ids=["garbage", "method", "header-line", "nul-in-url", "tls", "cl-and-te", "bad-chunk-size"])
async def test_malformed_requests_get_400_and_close(garbage: bytes) -> None:
    handler = EchoHandler()
    async with serving(handler) as server, connect(server) as client:
        await client.send(garbage)
        resp = await client.response()
        assert resp.status == 400 and resp.headers["connection"] == "close"
        await client.expect_closed()
    assert handler.seen == []


async def test_valid_request_then_garbage_answers_both() -> None:
    handler = EchoHandler()
    async with serving(handler) as server, connect(server) as client:
        await client.send(req("GET", "/ok") + b"GARBAGE\r\n\r\n")
        first = await client.response()
        assert first.status == 200 and "connection" not in first.headers
        second = await client.response()
        assert second.status == 400 and second.headers["connection"] == "close"
        await client.expect_closed()


async def test_pipelined_request_then_refused_request_answers_both() -> None:
    async with serving() as server, connect(server) as client:
        await client.send(req("GET", "/ok") + req("POST", "/refuse", b"abc"))
        assert (await client.response()).status == 200
        refused = await client.response()
        assert refused.status == 403 and refused.headers["x-error"] == "AuthForbidden"
        await client.expect_closed()


@pytest.mark.parametrize("request_bytes", [
    req("GET", "/ws", headers=(("Connection", "Upgrade"), ("Upgrade", "websocket"))),
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
], ids=["upgrade", "connect"])
async def test_upgrade_requests_get_400(request_bytes: bytes) -> None:
    handler = EchoHandler()
    async with serving(handler) as server, connect(server) as client:
        await client.send(request_bytes)
        resp = await client.response()
        assert resp.status == 400 and resp.headers["connection"] == "close"
        await client.expect_closed()
    assert handler.seen == []


async def test_body_limit_refusal_uses_error_and_closes() -> None:
    handler = EchoHandler()
    async with serving(handler) as server, connect(server) as client:
        await client.send(req("POST", "/refuse", b"abc"))
        resp = await client.response()
        assert resp.status == 403 and resp.headers["x-error"] == "AuthForbidden"
        await client.expect_closed()
    assert handler.seen == [] and handler.errors[0][1].path == "/refuse"


# -- slow and idle clients --------------------------------------------------------------------------


async def test_stalled_headers_get_408_after_read_timeout() -> None:
    async with serving(read_timeout=0.3) as server, connect(server) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: test\r\nX-Half: ")
        resp = await client.response()
        assert resp.status == 408 and resp.headers["connection"] == "close"
        await client.expect_closed()


async def test_trickled_headers_get_408_although_each_byte_is_in_time() -> None:
    # Slowloris proper: every piece arrives within read_timeout, but the headers never end.
    async with serving(read_timeout=0.3) as server, connect(server) as client:
        await client.send(b"GET / HTTP/1.1\r\n")
        with anyio.fail_after(GUARD):
            i = 0
            while not client.responses and not client.closed:
                if not await client.send(b"X-%d: v\r\n" % i):
                    break
                i += 1
                with anyio.move_on_after(0.1):
                    await client.fill()
        resp = await client.response()
        assert resp.status == 408


async def test_stalled_body_gets_408() -> None:
    async with serving(read_timeout=0.3) as server, connect(server) as client:
        await client.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc")
        resp = await client.response()
        assert resp.status == 408
        await client.expect_closed()


async def test_idle_keep_alive_connection_is_closed_after_keepalive_timeout() -> None:
    async with serving(keepalive_timeout=0.3, read_timeout=30) as server, connect(server) as client:
        await client.send(req("GET", "/"))
        assert (await client.response()).status == 200
        await client.expect_closed()
        # a connection that never sends anything is idle too
        async with connect(server) as silent:
            await silent.expect_closed()


# -- Expect: 100-continue ---------------------------------------------------------------------------


async def test_expect_100_continue_before_the_body() -> None:
    async with serving() as server, connect(server) as client:
        await client.send(b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = await client.response()
        assert interim.status == 100
        await client.send(b"hello")
        resp = await client.response()
        assert resp.status == 200 and resp.body == b"hello"


async def test_expect_100_continue_with_too_large_body_is_413_instead() -> None:
    async with serving() as server, connect(server) as client:
        await client.send(b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (LIMIT * 10))
        resp = await client.response()
        assert resp.status == 413
        await client.expect_closed()


async def test_expect_100_continue_behind_a_pipelined_request() -> None:
    async with serving() as server, connect(server) as client:
        await client.send(req("GET", "/first")
                          + b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert (await client.response()).headers["x-path"] == "/first"
        assert (await client.response()).status == 100
        await client.send(b"ok")
        assert (await client.response()).body == b"ok"


async def test_no_100_continue_when_the_body_came_with_the_headers() -> None:
    async with serving() as server, connect(server) as client:
        await client.send(b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nok"
                          + req("GET", "/next"))
        first = await client.response()
        assert first.status == 200 and first.body == b"ok"
        assert (await client.response()).headers["x-path"] == "/next"


# -- max_connections --------------------------------------------------------------------------------


async def test_max_connections_holds_further_connections_until_one_closes() -> None:
    handler = EchoHandler()
    async with serving(handler, max_connections=2) as server:
        a = Client(await anyio.connect_tcp("127.0.0.1", server.port))
        b = Client(await anyio.connect_tcp("127.0.0.1", server.port))
        try:
            for client, name in ((a, "/a1"), (b, "/b1")):
                await client.send(req("GET", name))
                assert (await client.response()).status == 200
            # The kernel accepts a third connection, and takes its request...
            c = Client(await anyio.connect_tcp("127.0.0.1", server.port))
            assert await c.send(req("GET", "/c"))
            # ...but the server does not serve it while a and b are open, though they are served.
            for client, name in ((a, "/a2"), (b, "/b2"), (a, "/a3")):
                await client.send(req("GET", name))
                assert (await client.response()).status == 200
            assert "/c" not in handler.paths and not c.responses
            await a.aclose()
            resp = await c.response()
            assert resp.status == 200 and resp.headers["x-path"] == "/c"
            assert handler.paths == ["/a1", "/b1", "/a2", "/b2", "/a3", "/c"]
            await c.aclose()
        finally:
            await b.aclose()
            await a.aclose()


# -- handler errors ---------------------------------------------------------------------------------


async def test_handler_request_error_becomes_its_error_response() -> None:
    handler = EchoHandler()
    async with serving(handler) as server, connect(server) as client:
        await client.send(req("GET", "/raise"))
        resp = await client.response()
        assert resp.status == 404 and resp.headers["x-error"] == "NotFound"
        assert json.loads(resp.body) == {"detail": "nothing here"}
        # the connection stays usable
        await client.send(req("GET", "/after"))
        assert (await client.response()).status == 200
    exc, request = handler.errors[0]
    assert isinstance(exc, NotFound) and request is not None and request.path == "/raise"


async def test_handler_crash_is_500_and_the_server_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    async with serving() as server, connect(server) as other, connect(server) as client:
        await client.send(req("GET", "/crash"))
        assert (await client.response()).status == 500
        await other.send(req("GET", "/other"))
        assert (await other.response()).status == 200
        await client.send(req("GET", "/again"))
        assert (await client.response()).status == 200
        assert (await roundtrip(server, req("GET", "/new"))).status == 200
    assert any(record.exc_info and isinstance(record.exc_info[1], RuntimeError) for record in caplog.records)


async def test_error_detail_beyond_latin1_in_a_header_is_sent_not_fatal() -> None:
    async with serving() as server, connect(server) as client:
        await client.send(req("GET", "/unicode"))
        resp = await client.response()
        assert resp.status == 404 and resp.headers["x-detail"] == "no route for ??"
        await client.send(req("GET", "/after"))
        assert (await client.response()).status == 200


async def test_response_the_server_cannot_encode_closes_that_connection_only(caplog: pytest.LogCaptureFixture) -> None:
    async with serving() as server, connect(server) as other, connect(server) as client:
        await other.send(req("GET", "/before"))
        assert (await other.response()).status == 200
        await client.send(req("GET", "/bad-response"))
        await client.expect_closed()
        await other.send(req("GET", "/after"))
        assert (await other.response()).status == 200
        assert (await roundtrip(server, req("GET", "/new"))).status == 200
    assert any(record.exc_info for record in caplog.records)


class _FlakyListener:
    """Wraps a listener so that its first ``accept`` fails like a process out of file descriptors."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.failures = 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def accept(self):
        if self.failures == 0:
            self.failures += 1
            raise OSError(24, "Too many open files")
        return await self._inner.accept()


async def test_accept_error_does_not_stop_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    real = anyio.create_tcp_listener
    wrapped: list[_FlakyListener] = []

    async def flaky_listener(**kwargs):
        multi = await real(**kwargs)
        multi.listeners[:] = [_FlakyListener(listener) for listener in multi.listeners]
        wrapped.extend(multi.listeners)
        return multi

    monkeypatch.setattr(httpserver.anyio, "create_tcp_listener", flaky_listener)
    async with serving() as server:
        assert (await roundtrip(server, req("GET", "/"))).status == 200
    assert wrapped and wrapped[0].failures == 1


# -- graceful shutdown ------------------------------------------------------------------------------


async def test_shutdown_finishes_requests_in_progress_and_closes_idle_connections() -> None:
    handler = EchoHandler()
    server = HttpServer(handler, HttpLimits(read_timeout=30, keepalive_timeout=60))
    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            port = await tg.start(server.serve, "127.0.0.1", 0)
            assert port == server.port
            async with connect(server) as idle, connect(server) as busy:
                await idle.send(req("GET", "/idle"))
                assert (await idle.response()).status == 200
                await busy.send(req("POST", "/block", b"payload"))
                await handler.entered.wait()
                assert server.active_requests == 1

                server.shutdown()
                await idle.expect_closed()  # long before keepalive_timeout
                # No new connection is served: refused, or closed without an answer.
                try:
                    late_stream = await anyio.connect_tcp("127.0.0.1", port)
                except OSError:
                    pass
                else:
                    async with late_stream:
                        late = Client(late_stream)
                        await late.send(req("GET", "/late"))
                        await late.expect_closed()

                handler.gate.set()
                resp = await busy.response()
                assert resp.status == 200 and resp.body == b"payload" and resp.headers["connection"] == "close"
                await busy.expect_closed()
        # leaving the task group means serve returned
    assert "/late" not in handler.paths and server.active_requests == 0


async def test_shutdown_with_no_connections_returns_promptly() -> None:
    async with serving() as server:
        assert (await roundtrip(server, req("GET", "/"))).status == 200


# -- robustness: random input never hangs the server ------------------------------------------------

ALLOWED = {200, 400, 408, 413, 414, 415, 431}
FUZZ_LIMITS = {"max_connections": 1, "max_header_bytes": 1024, "max_pipelined_requests": 4,
               "read_timeout": 0.2, "keepalive_timeout": 0.2}

VALID = [
    req("GET", "/a?b=c"),
    req("POST", "/e", PAYLOAD) + req("GET", "/x"),
    req("POST", "/g", gzip.compress(PAYLOAD), (("Content-Encoding", "gzip"),)),
    req("POST", "/c", chunked(b"abc", b"defg"), CHUNKED, length=False),
    req("GET", "/", version="1.0"),
]


async def _fuzz_one(data: bytes, half_close: bool) -> None:
    async with serving(EchoHandler(limit=256), **FUZZ_LIMITS) as server:
        with anyio.fail_after(GUARD):
            async with connect(server) as client:
                await client.send(data)
                if half_close:
                    await client.stream.send_eof()
                while await client.fill():
                    pass
                assert not client.in_message, "truncated response"
                for resp in client.responses:
                    assert resp.status in ALLOWED, resp
                    assert int(resp.headers["content-length"]) == len(resp.body)
            # max_connections=1: this is only served if the fuzzed connection gave its slot back
            assert (await roundtrip(server, req("GET", "/check"))).status == 200


FUZZ_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ_SETTINGS
@given(data=st.binary(max_size=600), half_close=st.booleans())
async def test_random_bytes_get_a_response_or_close_never_a_hang(data: bytes, half_close: bool) -> None:
    await _fuzz_one(data, half_close)


@st.composite
def mutated_requests(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate"]))
        if op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == "replace" and pos < len(data):
            data[pos] = draw(st.sampled_from(b"\r\n :\x00\xff0aZ;-"))
        elif op == "truncate":
            del data[pos:]
        elif op == "duplicate":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 40))]
    return bytes(data)


@FUZZ_SETTINGS
@given(data=mutated_requests(), half_close=st.booleans())
async def test_mutated_requests_get_a_response_or_close_never_a_hang(data: bytes, half_close: bool) -> None:
    await _fuzz_one(data, half_close)


async def test_413_reaches_a_client_still_uploading_its_body_without_a_reset() -> None:
    # A client without Expect: 100-continue sends the whole body at once. The server refuses it
    # early; closing with the body unread would reset the connection (the client's send fails, and
    # on some stacks the unread answer is lost): the server half-closes and drains instead.
    async with serving() as server, connect(server) as client:
        sent = []

        async def upload() -> None:
            sent.append(await client.send(req("POST", "/upload", b"u" * 4_000_000)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(upload)
            resp = await client.response()
        assert resp.status == 413 and resp.headers["connection"] == "close"
        assert sent == [True], "the upload was reset"
        await client.expect_closed()
