"""The client IP: socket peer, X-Forwarded-For only through trusted proxies, {{auto}} filled in."""

from __future__ import annotations

import uuid

import anyio
import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minisentry.clientip import client_ip, parse_networks
from minisentry.envelope import Envelope, Item, serialize_envelope
from minisentry.errors import ConfigError

from ..conftest import KEY, running_pipeline

TRUSTED = parse_networks(["127.0.0.1", "10.0.0.0/8", "fd00::/8"])


def test_forwarded_chain_is_believed_only_from_trusted_proxies():
    assert client_ip("127.0.0.1", "203.0.113.9", TRUSTED) == "203.0.113.9"
    assert client_ip("127.0.0.1", "1.1.1.1, 203.0.113.9, 10.0.0.7", TRUSTED) == "203.0.113.9"  # right-most untrusted
    assert client_ip("198.51.100.1", "203.0.113.9", TRUSTED) == "198.51.100.1"  # an untrusted peer cannot claim one
    assert client_ip("::ffff:127.0.0.1", "2001:db8::1", TRUSTED) == "2001:db8::1"
    assert client_ip("127.0.0.1", "not-an-ip", TRUSTED) == "127.0.0.1"
    assert client_ip("127.0.0.1", None, ()) == "127.0.0.1"


@given(st.one_of(st.none(), st.text(max_size=40)), st.one_of(st.none(), st.text(max_size=200)))
def test_fuzz_never_raises(peer, forwarded):
    client_ip(peer, forwarded, TRUSTED)


def test_bad_trusted_proxy_is_a_config_error(make_config):
    with pytest.raises(ConfigError, match="trusted_proxies"):
        make_config(server={"trusted_proxies": ["10.0.0.0/33"]})


@pytest.mark.anyio
async def test_auto_ip_filled_from_the_forwarded_client(make_config):
    config = make_config(server={"trusted_proxies": ["127.0.0.1"]})
    event_id = uuid.uuid4().hex
    event = {"event_id": event_id, "message": "hi", "platform": "python", "user": {"ip_address": "{{auto}}"}}
    body = serialize_envelope(Envelope({"event_id": event_id}, [Item({"type": "event"}, orjson.dumps(event))]))
    async with running_pipeline(config) as pipeline:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"http://127.0.0.1:{pipeline.port}/api/1/envelope/", content=body,
                                         headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}",
                                                  "X-Forwarded-For": "203.0.113.50"})
        assert response.status_code == 200
        await pipeline.flush()
        stored = (await anyio.to_thread.run_sync(pipeline.store.get_event, event_id))["data"]
    assert stored["user"]["ip_address"] == "203.0.113.50"
