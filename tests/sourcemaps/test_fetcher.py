"""The SSRF-safe fetcher against a real local HTTP server: what it refuses, and what an allow-list lets through."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from minisentry.config_sourcemaps import SourcemapsConfig
from minisentry.errors import FetchError, FetchRefused
from minisentry.fetcher import Fetcher, check_address
from minisentry.clientip import parse_networks

pytestmark = pytest.mark.anyio


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.startswith("/redirect"):
            target = self.path.partition("?to=")[2]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"x" * 5000 if self.path == "/big.js" else f"host={self.headers['Host']}".encode()
        self.send_response(200 if self.path != "/missing.js" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("SourceMap", "app.js.map")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fetcher(**settings) -> Fetcher:
    return Fetcher(SourcemapsConfig(**settings))


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1",
                                     "224.0.0.1"])
def test_non_public_addresses_are_refused(address):
    with pytest.raises(FetchRefused):
        check_address(address, ())


def test_public_and_allowed_addresses_pass():
    check_address("93.184.216.34", ())
    check_address("2606:2800:220:1:248:1893:25c7:1946", ())
    check_address("127.0.0.1", parse_networks(["127.0.0.0/8"]))


async def test_loopback_is_refused_by_default(local_server):
    client = fetcher()
    try:
        for url in (f"http://{local_server}/app.js", f"http://localhost:{local_server.split(':')[1]}/app.js"):
            with pytest.raises(FetchRefused) as info:
                await client.fetch(url)
            assert info.value.kind == "restricted_ip"
        assert client.refused == 2 and client.fetched == 0
    finally:
        await client.aclose()


async def test_allow_list_lets_the_test_origin_through_and_pins_the_address(local_server):
    port = local_server.split(":")[1]
    client = fetcher(fetch_private_networks=["127.0.0.0/8", "::1/128"])
    try:
        fetched = await client.fetch(f"http://localhost:{port}/app.js")
        # The connection went to the checked address; the name travelled as Host header.
        assert fetched.body == f"host=localhost:{port}".encode()
        assert fetched.headers["sourcemap"] == "app.js.map"
        with pytest.raises(FetchError) as info:
            await client.fetch(f"http://{local_server}/missing.js")
        assert info.value.kind == "js_invalid_http_code"
    finally:
        await client.aclose()


async def test_redirects_are_checked_at_every_hop(local_server):
    port = local_server.split(":")[1]
    # The first hop is allowed (127.0.0.1 only); its redirect to another loopback name is not.
    client = fetcher(fetch_private_networks=["127.0.0.1/32"], fetch_allowed_hosts=["127.0.0.1"])
    try:
        with pytest.raises(FetchRefused) as info:
            await client.fetch(f"http://{local_server}/redirect?to=http://localhost:{port}/app.js")
        assert info.value.kind == "js_scraping_disabled"  # localhost is not an allowed host
        with pytest.raises(FetchRefused):
            await client.fetch(f"http://{local_server}/redirect?to=http://169.254.169.254/latest/meta-data/")
        fetched = await client.fetch(f"http://{local_server}/redirect?to=/app.js")
        assert fetched.url == f"http://{local_server}/app.js"
    finally:
        await client.aclose()
    # Without the allow-list even the first hop of a redirect chain is refused.
    client = fetcher(fetch_allowed_hosts=["127.0.0.1"])
    try:
        with pytest.raises(FetchRefused):
            await client.fetch(f"http://{local_server}/redirect?to=/app.js")
    finally:
        await client.aclose()


async def test_limits_redirect_count_size_scheme_and_switch(local_server):
    allowed = {"fetch_private_networks": ["127.0.0.0/8"]}
    client = fetcher(**allowed, fetch_max_bytes=4096, fetch_max_redirects=1)
    try:
        with pytest.raises(FetchError) as info:
            await client.fetch(f"http://{local_server}/big.js")
        assert info.value.kind == "fetch_too_large"
        loop = f"http://{local_server}/redirect?to=/redirect%3Fto=/app.js"
        with pytest.raises(FetchError, match="redirects"):
            await client.fetch(loop)
        for url in ("file:///etc/passwd", "ftp://example.com/a.js", f"http://user:pw@{local_server}/app.js",
                    "http:///nohost.js"):
            with pytest.raises(FetchRefused):
                await client.fetch(url)
    finally:
        await client.aclose()
    client = fetcher(**allowed, fetch=False)
    try:
        with pytest.raises(FetchRefused) as info:
            await client.fetch(f"http://{local_server}/app.js")
        assert info.value.kind == "js_scraping_disabled"
    finally:
        await client.aclose()
