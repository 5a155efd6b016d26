"""End to end: a bundle built by the real esbuild, debug ids injected and uploaded by the real
sentry-cli, an error thrown from it under the real @sentry/node, symbolicated by the real server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import KEY, TOKEN, base_config
from .npm_tools import npm_root
from .test_sdk import cli, count, wait_for

pytestmark = pytest.mark.e2e

JS = Path(__file__).resolve().parent / "js"


def sentry_cli() -> str:
    found = shutil.which("sentry-cli", path=str(Path(sys.executable).parent)) or shutil.which("sentry-cli")
    assert found, "sentry-cli (PyPI package sentry-cli, in the test extra) is not installed"
    return found


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout + result.stderr


def build(tmp_path: Path, root: Path) -> Path:
    """esbuild -> dist/bundle.js + map; sentry-cli injects the debug id into both."""
    shutil.copy(JS / "app.js", tmp_path / "app.js")
    run(str(root / "node_modules" / ".bin" / "esbuild"), "app.js", "--bundle", "--minify", "--sourcemap",
        "--platform=node", "--format=cjs", "--outfile=dist/bundle.js", "--log-level=warning", cwd=tmp_path)
    run(sentry_cli(), "sourcemaps", "inject", "dist", cwd=tmp_path)
    assert "//# debugId=" in (tmp_path / "dist" / "bundle.js").read_text()
    return tmp_path / "dist"


def throw(server, bundle: Path, root: Path, release: str) -> None:
    run("node", str(JS / "throw.js"), server.dsn(), str(bundle), release, cwd=bundle.parent,
        env={"NODE_PATH": str(root / "node_modules")})


def frames_of(config: Path, event_id: str) -> tuple[dict, list[dict]]:
    shown = cli(config, "events", "show", event_id, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)["data"]
    return data, data["exception"]["values"][-1]["stacktrace"]["frames"]


def latest_event(db: Path) -> str:
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT event_id FROM events ORDER BY rowid DESC LIMIT 1").fetchone()[0]


def test_sentry_cli_upload_then_node_error_is_symbolicated(tmp_path, server_factory):
    root = npm_root()
    dist = build(tmp_path, root)
    raw = base_config(tmp_path)
    server = server_factory(raw)
    config = tmp_path / "minisentry.toml"
    out = run(sentry_cli(), "--url", server.url, "--auth-token", TOKEN, "--log-level=info", "sourcemaps", "upload",
              "--org", "minisentry", "--project", "demo", "--release", "shop@1.0", str(dist), cwd=tmp_path)
    assert "debug id" in out
    throw(server, dist / "bundle.js", root, "shop@1.0")
    db = tmp_path / "store.sqlite"
    wait_for(lambda: count(db, "SELECT COUNT(*) FROM events") >= 1, timeout=30)
    data, frames = frames_of(config, latest_event(db))
    crash, caller = frames[-1], frames[-2]
    source = (JS / "app.js").read_text().splitlines()
    assert crash["function"] == "parsePrice" and caller["function"] == "checkout"
    assert crash["abs_path"] == str(tmp_path / "app.js") and crash["module"] == "app"
    assert crash["lineno"] == 5 and source[4].strip() in crash["context_line"]
    assert crash["pre_context"][-1] == source[3] and crash["post_context"][0] == source[5]
    assert caller["lineno"] == 11 and "parsePrice(cart.price)" in caller["context_line"]
    assert crash["data"]["sourcemap"] == "~/bundle.js.map"
    # The minified frames are kept, as Sentry keeps them.
    raw_crash = data["exception"]["values"][-1]["raw_stacktrace"]["frames"][-1]
    assert raw_crash["filename"].endswith("dist/bundle.js") and raw_crash["lineno"] == 3
    # The culprit (and grouping, which runs after symbolication) use the original names.
    assert data["culprit"] == "parsePrice(app)"
    # The throwing script itself was not uploaded: recorded, not dropped.
    assert any(error["type"] == "js_no_source" and error["url"].endswith("throw.js") for error in data["errors"])

    # A second event of the same release is symbolicated from the caches and grouped with the first.
    throw(server, dist / "bundle.js", root, "shop@1.0")
    wait_for(lambda: count(db, "SELECT COUNT(*) FROM events") >= 2, timeout=30)
    assert count(db, "SELECT COUNT(DISTINCT issue_id) FROM events") == 1


def test_local_cli_upload_by_release_without_debug_ids(tmp_path, server_factory):
    root = npm_root()
    shutil.copy(JS / "app.js", tmp_path / "app.js")
    run(str(root / "node_modules" / ".bin" / "esbuild"), "app.js", "--bundle", "--minify", "--sourcemap",
        "--platform=node", "--format=cjs", "--outfile=dist/bundle.js", "--log-level=warning", cwd=tmp_path)
    raw = base_config(tmp_path)
    config = tmp_path / "minisentry.toml"
    server = server_factory(raw)
    uploaded = cli(config, "sourcemaps", "upload", str(tmp_path / "dist"), "--project", "demo", "--release", "r9")
    assert uploaded.returncode == 0, uploaded.stderr
    assert "stored 2 file(s) (0 with debug ids)" in uploaded.stdout
    throw(server, tmp_path / "dist" / "bundle.js", root, "r9")
    db = tmp_path / "store.sqlite"
    wait_for(lambda: count(db, "SELECT COUNT(*) FROM events") >= 1, timeout=30)
    _, frames = frames_of(config, latest_event(db))
    assert frames[-1]["function"] == "parsePrice" and frames[-1]["lineno"] == 5
    assert frames[-1]["data"]["sourcemap"] == "~/bundle.js.map"
    assert KEY in server.dsn()
