"""Fixtures for backend contract suites: a private key prefix on the real Redis, cleaned up after."""

from __future__ import annotations

import uuid

import pytest

from tests import services


@pytest.fixture
def redis_prefix():
    """Return ``(url, prefix)`` for the test Redis with a fresh prefix; every ``prefix*`` key is deleted after.

    Skips locally (fails under CI=true) when Redis or redis-py is missing.
    """
    redis = services.require_module("redis")
    url = services.redis_url()
    prefix = f"minisentry-test-{uuid.uuid4().hex[:12]}"
    yield url, prefix
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
