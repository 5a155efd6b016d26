"""The edge relay's parts without a second process: client retries, forwarder outcomes, bounded caches, config."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from minisentry.config import UpstreamConfig, config_from_dict
from minisentry.envelope import Envelope, Item
from minisentry.errors import AuthForbidden, ConfigError, PipelineFull, UpstreamError
from minisentry.forwarder import Forwarder
from minisentry.messages import EnvelopeMessage
from minisentry.outcomes import Outcome, OutcomeAggregator
from minisentry.projectconfigs import UpstreamProjectKeys
from minisentry.ratelimits import RateLimit
from minisentry.relayauth import RelayVerifier, generate_credentials
from minisentry.upstream import UpstreamClient, backoff_delay
from minisentry.upstreamlimits import MAX_LIMITS_PER_SCOPE, UpstreamLimits

from .conftest import KEY

CREDENTIALS = generate_credentials()
FAST = UpstreamConfig(url="http://upstream.test", retry_initial=0.001, retry_max=0.002, max_retries=3)


def message() -> EnvelopeMessage:
    event = Item({"type": "event"}, b'{"message": "hi"}')
    return EnvelopeMessage(1, KEY, 0.0, Envelope({"event_id": "a" * 32}, [event]), "10.0.0.7")


class Upstream:
    """A scripted upstream behind httpx.MockTransport that checks every request's signature."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.verifier = RelayVerifier({CREDENTIALS.relay_id: CREDENTIALS.public_key}, max_age=60)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.verifier.verify({k.lower(): v for k, v in request.headers.items()}, request.content)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, config: UpstreamConfig = FAST) -> UpstreamClient:
        return UpstreamClient(config, CREDENTIALS, transport=httpx.MockTransport(self))


@pytest.mark.anyio
async def test_forward_retries_connection_errors_and_5xx_then_succeeds():
    upstream = Upstream(httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(200, json={}))
    async with upstream.client() as client:
        result = await client.forward(message())
    assert result.ok and len(upstream.requests) == 3
    sent = upstream.requests[-1]
    assert sent.url.path == "/api/1/envelope/"
    assert f"sentry_key={KEY}" in sent.headers["x-sentry-auth"]  # the SDK's key, for the upstream to check
    assert sent.headers["x-forwarded-for"] == "10.0.0.7"


@pytest.mark.anyio
async def test_forward_gives_up_after_the_retry_limit():
    upstream = Upstream(httpx.Response(502))
    async with upstream.client() as client:
        with pytest.raises(UpstreamError, match="4 attempt"):
            await client.forward(message())
    assert len(upstream.requests) == 1 + FAST.max_retries


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    import random

    rng = random.Random(7)
    delays = [backoff_delay(attempt, 0.1, 2.0, rng) for attempt in range(8)]
    for attempt, delay in enumerate(delays):
        base = min(2.0, 0.1 * 2 ** attempt)
        assert base * 0.5 <= delay <= base


def forwarder(upstream: Upstream) -> tuple[Forwarder, OutcomeAggregator, UpstreamLimits]:
    outcomes, limits = OutcomeAggregator(), UpstreamLimits()
    return Forwarder(upstream.client(), spool=None, outcomes=outcomes, limits=limits, store=None), outcomes, limits


@pytest.mark.anyio
async def test_a_4xx_is_final_and_counted_invalid_at_the_edge():
    upstream = Upstream(httpx.Response(400, headers={"X-Sentry-Error": "bad envelope"}))
    fwd, outcomes, _ = forwarder(upstream)
    await fwd._forward(message())
    assert len(upstream.requests) == 1
    [row] = outcomes.take()
    assert (row.outcome, row.category, row.reason) == (Outcome.INVALID, "error", "upstream_400")


@pytest.mark.anyio
async def test_a_429_with_rate_limits_is_final_remembered_and_not_counted_twice():
    upstream = Upstream(httpx.Response(429, headers={"X-Sentry-Rate-Limits": "60:error:project:too_many",
                                                     "Retry-After": "60"}))
    fwd, outcomes, limits = forwarder(upstream)
    await fwd._forward(message())
    assert len(upstream.requests) == 1 and outcomes.take() == []  # the upstream counted it
    result = limits.check(1, KEY, message().envelope.items)
    assert result is not None and result.header().startswith(("60:error:project:too_many",
                                                              "59:error:project:too_many"))


@pytest.mark.anyio
async def test_a_429_without_rate_limits_is_backpressure_and_retried():
    upstream = Upstream(httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200, json={}))
    fwd, outcomes, limits = forwarder(upstream)
    await fwd._forward(message())
    assert len(upstream.requests) == 2 and fwd.forwarded == 1 and len(limits) == 0


def test_upstream_limits_scopes_expiry_and_bounds():
    now = [1000.0]
    limits = UpstreamLimits(max_scopes=2, clock=lambda: now[0])
    items = message().envelope.items
    limits.add(1, KEY, [RateLimit(10, ("transaction",), "project")])
    assert limits.check(1, KEY, items) is None  # another category
    limits.add(1, KEY, [RateLimit(10, (), "key")])
    assert limits.check(1, KEY, items).rejected["error"].scope == "key"
    assert limits.check(1, "f" * 32, items) is None  # key scope: only that key
    # At the bound (two scopes), a third scope is not remembered: the upstream still enforces it.
    limits.add(2, KEY, [RateLimit(10, (), "project")])
    assert limits.skipped == 1 and limits.check(2, "f" * 32, items) is None
    for index in range(MAX_LIMITS_PER_SCOPE + 5):
        limits.add(1, KEY, [RateLimit(10, (f"c{index}",), "project")])
    assert limits.skipped > 1
    now[0] += 11  # every limit has expired: room again, nothing limited
    assert limits.check(1, KEY, items) is None
    limits.add(2, KEY, [RateLimit(5, ("error",), "organization")])
    assert limits.check(3, "f" * 32, items).rejected["error"].retry_after == 5


@pytest.mark.anyio
async def test_project_keys_cache_negative_entries_single_flight_and_bound():
    now = [0.0]
    calls: list[list[str]] = []
    gate = anyio.Event()

    async def fetch(keys):
        calls.append(keys)
        await gate.wait()
        return {key: ({"projectId": 1, "publicKeys": [{"publicKey": key, "isEnabled": True}]}
                      if key.startswith("0") else None) for key in keys}

    cache = UpstreamProjectKeys(fetch, ttl=60, negative_ttl=5, max_keys=2, clock=lambda: now[0])
    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(cache.ensure, KEY)  # five concurrent misses, one request
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert calls == [[KEY]] and cache.project_of(KEY, 1) == 1
    with pytest.raises(AuthForbidden, match="another|belong"):
        cache.project_of(KEY, 2)
    await cache.ensure("f" * 32)
    with pytest.raises(AuthForbidden, match="unknown public key"):
        cache.project_of("f" * 32, 1)
    await cache.ensure("f" * 32)
    assert len(calls) == 2  # the 403 is cached ...
    now[0] += 6
    await cache.ensure("f" * 32)
    assert len(calls) == 3  # ... for negative_ttl only
    await cache.ensure("0" * 32)  # a third key: the least recently used one is evicted
    assert len(cache) == 2 and cache.known_project_of(KEY) is None


@pytest.mark.anyio
async def test_project_keys_serve_stale_while_the_upstream_is_down_and_refuse_cold_misses():
    now = [0.0]
    down = [False]

    async def fetch(keys):
        if down[0]:
            raise UpstreamError("down")
        return {key: {"projectId": 1, "publicKeys": [{"publicKey": key, "isEnabled": True}]} for key in keys}

    cache = UpstreamProjectKeys(fetch, ttl=10, negative_ttl=1, max_keys=10, clock=lambda: now[0])
    await cache.ensure(KEY)
    down[0], now[0] = True, 30.0
    await cache.refresh_once()  # fails, logged; the old entry stays
    await cache.ensure(KEY)
    assert cache.project_of(KEY, 1) == 1
    with pytest.raises(PipelineFull):
        await cache.ensure("0" * 32)


@pytest.mark.parametrize(("raw", "message"), [
    ({"upstream": {"urll": "http://x"}}, "upstream.urll"),
    ({"upstream": {"url": "http://x:3000"}}, "upstream.credentials is required"),
    ({"upstream": {"url": "ftp://x"}}, "upstream.url"),
    ({"upstream": {"max_concurrency": 0}}, "upstream.max_concurrency"),
    ({"upstream": {"retry_initial": 0}}, "upstream.retry_initial"),
    ({"relays": [{"id": "r1", "public_key": "nope"}]}, "relays[0].public_key"),
    ({"relays": [{"id": "r1"}]}, "relays[0] is missing required key(s) public_key"),
    ({"relays": [{"id": "r1", "public_key": CREDENTIALS.public_key, "extra": 1}]}, "relays[0].extra"),
    ({"server": {"relay_signature_max_age": 0}}, "server.relay_signature_max_age"),
])
def test_config_errors_name_the_key(tmp_path, raw, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, base_dir=tmp_path)
    assert message in str(info.value)


def test_config_reads_the_credentials_file_relative_to_the_config(tmp_path):
    CREDENTIALS.save(tmp_path / "relay.json")
    config = config_from_dict({"upstream": {"url": "http://up:8000", "credentials": "relay.json"},
                               "relays": [{"id": CREDENTIALS.relay_id, "public_key": CREDENTIALS.public_key}]},
                              base_dir=tmp_path)
    assert config.upstream.credentials == tmp_path / "relay.json"
    (tmp_path / "relay.json").write_text(json.dumps({"id": "x"}))
    with pytest.raises(ConfigError, match="not a relay credentials file"):
        config_from_dict({"upstream": {"url": "http://up:8000", "credentials": "relay.json"}}, base_dir=tmp_path)
