"""End to end: a minified bundle served over HTTP (not uploaded) is fetched, with its source map, and symbolicated.

The bundle is built by the real esbuild and served by a local HTTP server; the error's position in
it comes from running the bundle under node. The event names the bundle by its http URL, as a
browser SDK does. Loopback is refused by default (SSRF), so the same event is symbolicated only
when ``[sourcemaps] fetch_private_networks`` lets the test server's network through.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import uuid
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from ..conftest import KEY, base_config
from .npm_tools import npm_root
from .test_sdk import cli, count, wait_for
from .test_sourcemaps import JS, run

pytestmark = pytest.mark.e2e


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bundle_server(tmp_path):
    """esbuild's bundle + map in dist/, served over HTTP; yields (base URL, minified function, line, column) of the throw."""
    root = npm_root()
    shutil.copy(JS / "app.js", tmp_path / "app.js")
    run(str(root / "node_modules" / ".bin" / "esbuild"), "app.js", "--bundle", "--minify", "--sourcemap",
        "--platform=node", "--format=cjs", "--outfile=dist/bundle.js", "--log-level=warning", cwd=tmp_path)
    stack = run("node", "-e", "try { require('./dist/bundle.js').checkout({price: 'x'}) } "
                              "catch (e) { console.log(e.stack) }", cwd=tmp_path)
    function, line, column = re.search(r"at (\S+) \(.*bundle\.js:(\d+):(\d+)\)", stack).groups()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path / "dist")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", function, int(line), int(column)
    server.shutdown()
    server.server_close()


def _send(server, url: str, function: str, line: int, column: int) -> str:
    event_id = uuid.uuid4().hex
    event = {"event_id": event_id, "platform": "javascript", "release": "web@1",
             "exception": {"values": [{"type": "Error", "value": "bad price: x", "stacktrace": {"frames": [
                 {"abs_path": url, "filename": url, "lineno": line, "colno": column, "function": function}]}}]}}
    payload = json.dumps(event).encode()
    body = (json.dumps({"event_id": event_id}).encode() + b"\n" + json.dumps({"type": "event", "length": len(payload)}).encode()
            + b"\n" + payload + b"\n")
    response = httpx.post(f"{server.url}/api/1/envelope/", content=body,
                          headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7"}, timeout=10)
    assert response.status_code == 200, response.text
    return event_id


def _stored(tmp_path, event_id: str) -> dict:
    config = tmp_path / "minisentry.toml"
    wait_for(lambda: count(tmp_path / "store.sqlite", "SELECT COUNT(*) FROM events") >= 1, timeout=30)
    shown = cli(config, "events", "show", event_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["data"]


def test_a_served_bundle_and_its_map_are_fetched_when_the_network_is_allowed(tmp_path, server_factory, bundle_server):
    base, function, line, column = bundle_server
    server = server_factory(base_config(tmp_path, sourcemaps={"fetch_allowed_hosts": ["127.0.0.1"],
                                                              "fetch_private_networks": ["127.0.0.0/8"]}))
    data = _stored(tmp_path, _send(server, f"{base}/bundle.js", function, line, column))
    frame = data["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert (frame["function"], frame["lineno"]) == ("parsePrice", 5), (frame, data.get("errors"))
    assert 'throw new Error("bad price: " + text);' in frame["context_line"]
    assert frame["data"]["sourcemap"] == f"{base}/bundle.js.map"


def test_loopback_is_not_fetched_by_default(tmp_path, server_factory, bundle_server):
    base, function, line, column = bundle_server
    server = server_factory(base_config(tmp_path))
    data = _stored(tmp_path, _send(server, f"{base}/bundle.js", function, line, column))
    frame = data["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert frame["function"] == function and frame["lineno"] == line  # left as sent
    assert any(error.get("type") == "restricted_ip" for error in data.get("errors", [])), data.get("errors")
