"""The webhook poster's SSRF policy: every resolved address vetted, the vetted one connected to, no redirects."""

from __future__ import annotations

import ipaddress

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry.alert_http import WebhookPoster, check_public_address
from minisentry.errors import AlertDeliveryError, AlertRefused

from .receivers import WebhookReceiver

PUBLIC = "93.184.216.34"


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1%eth0", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::1", "2001:db8::1", "not-an-ip"])
def test_non_public_addresses_are_refused(address):
    with pytest.raises(AlertRefused):
        check_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", PUBLIC, "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    check_public_address(address)


@settings(max_examples=300, deadline=None)
@given(address=st.ip_addresses().map(str) | st.text(max_size=60))
def test_any_address_passes_or_is_refused(address):
    try:
        check_public_address(address)
    except AlertRefused:
        return
    # What passes is a global unicast address (an IPv6 carrying IPv4 judged by that IPv4 address).
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    carried = ip.ipv4_mapped or ip.sixtofour if isinstance(ip, ipaddress.IPv6Address) else None
    assert (carried or ip).is_global and not (carried or ip).is_multicast


def poster(handler, addresses=(PUBLIC,), *, allow_private=False) -> WebhookPoster:
    async def resolve(host, port):
        return list(addresses)
    return WebhookPoster(timeout=5, allow_private=allow_private, transport=httpx.MockTransport(handler),
                         resolve=resolve)


def delivery_error(handler) -> AlertDeliveryError:
    """The AlertDeliveryError a post to a webhook answered by ``handler`` raises (fails if none)."""
    async def main():
        hooks = poster(handler)
        try:
            with pytest.raises(AlertDeliveryError) as info:
                await hooks.post_json("https://hooks.example.com/", b"{}")
        finally:
            await hooks.aclose()
        return info.value

    return run(main)


def run(coro_fn):
    return anyio.run(coro_fn)


def test_the_connection_goes_to_the_vetted_address_with_the_name_as_host_and_sni():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async def main():
        hooks = poster(handler)
        try:
            assert await hooks.post_json("https://hooks.example.com/a?b=1", b"{}", {"X-Token": "t"}) == 204
            await hooks.post_json("http://hooks.example.com:8080/", b"{}")
        finally:
            await hooks.aclose()

    run(main)
    first, second = seen
    assert str(first.url) == f"https://{PUBLIC}/a?b=1" and first.headers["host"] == "hooks.example.com"
    assert first.extensions["sni_hostname"] == "hooks.example.com" and first.headers["x-token"] == "t"
    assert str(second.url) == f"http://{PUBLIC}:8080/" and second.headers["host"] == "hooks.example.com:8080"


def test_one_private_address_among_public_ones_is_refused_before_connecting():
    seen = []

    async def main():
        hooks = poster(lambda request: seen.append(request) or httpx.Response(200), addresses=[PUBLIC, "10.0.0.7"])
        try:
            with pytest.raises(AlertRefused, match="10.0.0.7 is not public"):
                await hooks.post_json("https://rebinding.example.com/", b"{}")
        finally:
            await hooks.aclose()

    run(main)
    assert seen == []


def test_a_name_resolved_by_us_reaches_a_real_local_receiver_when_private_is_allowed():
    """The host name is never resolved by the system ("alerts.invalid" has no DNS): only our vetted address is used."""
    with WebhookReceiver() as receiver:
        async def main():
            async def resolve(host, port):
                assert host == "alerts.invalid"
                return ["127.0.0.1"]
            hooks = WebhookPoster(timeout=5, allow_private=True, resolve=resolve)
            try:
                await hooks.post_json(f"http://alerts.invalid:{receiver.port}/x", b'{"a": 1}')
            finally:
                await hooks.aclose()

        run(main)
        (request,) = receiver.received
        assert request["headers"]["Host"] == f"alerts.invalid:{receiver.port}" and request["json"] == {"a": 1}


@pytest.mark.parametrize("status, retryable", [(500, True), (503, True), (429, True), (400, False), (404, False),
                                               (302, False)])
def test_answers_are_classified(status, retryable):
    error = delivery_error(lambda request: httpx.Response(status, headers={"Location": "http://10.0.0.1/"}))
    assert error.retryable is retryable and not isinstance(error, AlertRefused)
    if status == 302:
        assert "redirects are not followed" in str(error)


def test_connection_errors_are_retryable():
    def handler(request):
        raise httpx.ConnectError("refused")

    assert delivery_error(handler).retryable is True


@settings(max_examples=200, deadline=None)
@given(url=st.text(max_size=80) | st.from_regex(r"(https?|ftp|file)://[^/]{0,20}(:[0-9]{0,6})?/.{0,10}",
                                                   fullmatch=True))
def test_any_url_is_posted_or_refused_with_our_errors(url):
    async def main(addresses):
        hooks = poster(lambda request: httpx.Response(200), addresses=addresses)
        try:
            await hooks.post_json(url, b"{}")
        except AlertRefused:
            return "refused"
        except AlertDeliveryError:
            return "failed"
        finally:
            await hooks.aclose()
        return "sent"

    assert anyio.run(main, [PUBLIC]) in ("sent", "refused", "failed")
    # With one private address among the answers, nothing is ever sent.
    assert anyio.run(main, [PUBLIC, "::1"]) == "refused"
