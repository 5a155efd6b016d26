"""Where the real Redis / Kafka for the ``services`` tests are (helper module, not a test file).

``scripts/services.sh start`` starts both on free loopback ports and writes ``.services/env``::

    export MINISENTRY_TEST_REDIS_URL=redis://127.0.0.1:PORT/0
    export MINISENTRY_TEST_KAFKA_BOOTSTRAP=127.0.0.1:PORT

The environment variables win; without them the file is read. When a service is not configured or
does not accept connections, the calling test is skipped locally, but fails under CI (``CI=true``):
a Redis/Kafka test that silently skips in CI is a test that never runs.
"""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest

REDIS_URL_VAR = "MINISENTRY_TEST_REDIS_URL"
KAFKA_BOOTSTRAP_VAR = "MINISENTRY_TEST_KAFKA_BOOTSTRAP"
ENV_FILE = Path(__file__).resolve().parent.parent / ".services" / "env"

_HINT = "run `scripts/services.sh start` (then `. .services/env`)"


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def unavailable(message: str) -> None:
    """Skip the current test, or fail it when running in CI."""
    if in_ci():
        pytest.fail(f"{message} (CI=true: services tests must not be skipped)", pytrace=False)
    pytest.skip(f"{message}; {_HINT}")


def _read_env_file() -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = ENV_FILE.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("'\"")
    return values


def _lookup(var: str) -> str | None:
    value = os.environ.get(var) or _read_env_file().get(var)
    return value or None


def _reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_url() -> str:
    """URL of the test Redis (``redis://127.0.0.1:PORT/0``), or skip/fail the test."""
    url = _lookup(REDIS_URL_VAR)
    if url is None:
        unavailable(f"Redis not configured: {REDIS_URL_VAR} unset and no {ENV_FILE}")
    assert url is not None
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if not _reachable(host, port):
        unavailable(f"Redis at {url} ({REDIS_URL_VAR}) does not accept connections")
    return url


def kafka_bootstrap() -> str:
    """``host:port`` of the test Kafka broker, or skip/fail the test."""
    bootstrap = _lookup(KAFKA_BOOTSTRAP_VAR)
    if bootstrap is None:
        unavailable(f"Kafka not configured: {KAFKA_BOOTSTRAP_VAR} unset and no {ENV_FILE}")
    assert bootstrap is not None
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not port.isdigit() or not _reachable(host or "127.0.0.1", int(port)):
        unavailable(f"Kafka at {bootstrap} ({KAFKA_BOOTSTRAP_VAR}) does not accept connections")
    return bootstrap


def require_module(name: str) -> ModuleType:
    """Import a client library (``redis``, ``confluent_kafka``), or skip/fail the test like a
    missing service: in CI, an uninstalled client must not turn the tests into skips."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if in_ci():
            pytest.fail(f"{name} is not installed: {exc} (CI=true)", pytrace=False)
        pytest.skip(f"{name} is not installed ({exc}); pip install -e '.[redis,kafka]'")
        raise  # unreachable
