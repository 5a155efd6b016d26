"""Shared fixtures: configs on temp dirs, an embedded pipeline, and the real server as a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest

from minisentry.config import Config, config_from_dict

KEY = "0123456789abcdef0123456789abcdef"
OTHER_KEY = "fedcba9876543210fedcba9876543210"
DISABLED_KEY = "00000000000000000000000000000000"
TOKEN = "test-token-0123456789"


def base_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """A config mapping with two projects on a temp store; ``sections`` override whole sections."""
    raw: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0},
        "storage": {"path": str(tmp_path / "store.sqlite")},
        "stages": {"drain_timeout": 10.0},
        "api": {"tokens": [TOKEN]},
        "projects": [
            {"id": 1, "slug": "demo", "keys": [KEY]},
            {"id": 2, "slug": "other", "keys": [OTHER_KEY]},
        ],
    }
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(name), dict):
            raw[name] = {**raw[name], **value}
        else:
            raw[name] = value
    return raw


@pytest.fixture
def make_config(tmp_path: Path):
    """Build a validated Config on this test's temp dir."""

    def make(**sections: Any) -> Config:
        return config_from_dict(base_config(tmp_path, **sections), base_dir=tmp_path)

    return make


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request):
    """Run async tests on both backends: the code must not depend on one."""
    return request.param


@asynccontextmanager
async def running_pipeline(config: Config, *, http: bool = True) -> AsyncIterator[Any]:
    """Run an embedded Pipeline for the duration of the block."""
    from minisentry import Pipeline

    async with Pipeline(config, http=http) as pipeline:
        yield pipeline


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    """Write a config mapping as TOML (only the shapes our configs use)."""
    lines: list[str] = []
    arrays = ("projects", "quotas", "relays")
    for section, value in raw.items():
        if section in arrays:
            continue
        lines.append(f"[{section}]")
        nested = []
        for key, item in value.items():
            if isinstance(item, dict):
                nested.append((key, item))
            else:
                lines.append(f"{key} = {_toml(item)}")
        for key, item in nested:
            lines.append(f"[{section}.{key}]")
            lines += [f"{k} = {_toml(v)}" for k, v in item.items()]
    for section in arrays:
        for table in raw.get(section, []):
            lines.append(f"[[{section}]]")
            lines += [f"{k} = {_toml(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(value)


class ServerProcess:
    """The real ``minisentry serve`` in a subprocess; ``url``/``dsn`` once it listens."""

    def __init__(self, config_path: Path, extra_env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ("--port", "0")) -> None:
        self.config_path = config_path
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minisentry", "--config", str(config_path), "serve", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.lines: list[str] = []
        self.port = self._wait_for_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            match = re.search(r"listening on http://[^:]+:(\d+)", line)
            if match:
                return int(match.group(1))
        self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        raise RuntimeError(f"server did not start: {''.join(self.lines)}\n{err[-3000:]}")

    def dsn(self, key: str = KEY, project_id: int = 1) -> str:
        return f"http://{key}@127.0.0.1:{self.port}/{project_id}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str, str]:
        """Send ``sig`` and wait; return (exit code, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, "".join(self.lines) + out, err


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    """Start real servers from config mappings; all are stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(raw: dict[str, Any] | None = None, name: str = "minisentry.toml",
              args: tuple[str, ...] = ("--port", "0")) -> ServerProcess:
        path = write_config(tmp_path / name, raw or base_config(tmp_path))
        server = ServerProcess(path, args=args)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate(timeout=10)
