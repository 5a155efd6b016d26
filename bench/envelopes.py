"""Real ``sentry-sdk`` error envelopes, captured without a network, for the front-door benchmarks.

What it produces: the exact bytes the real ``sentry-sdk`` (2.x) HTTP transport would POST for an
application error: ``envelope.serialize()`` brotli-compressed at the SDK's default quality (4),
sent with ``Content-Type: application/x-sentry-envelope``, ``Content-Encoding: br``,
``X-Sentry-Auth`` and the SDK's ``User-Agent``. The error is a realistic one: an exception raised
four frames deep in a fake checkout handler with local variables (a request, a user, an order), so
that the event is ~6 KB of decoded JSON, like a real app error.

How: ``sentry_sdk.init(dsn=..., transport=_RecordingTransport)``, where ``_RecordingTransport`` is
the SDK's own ``HttpTransport`` with only its final network call replaced by a recorder, so
serialization, compression and headers are the SDK's own code. The capture is done once per
process (cached); ``make_bodies`` then rewrites the 32-hex event id (envelope header and event
payload; same length, so item ``length`` headers stay valid) and brotli-compresses each copy with
the same settings the SDK used. Build all bodies before a timed run: compression costs ~0.1 ms each.

Run it to see what was captured::

    python bench/envelopes.py            # sizes, headers, the decoded event's top-level keys
    python bench/envelopes.py --dump     # also print the decoded envelope
"""

from __future__ import annotations

import functools
import re
import sys
import uuid
from dataclasses import dataclass

import brotli

#: A fixed 32-hex public key the benchmarks use unless told otherwise.
DEFAULT_KEY = "0123456789abcdef0123456789abcdef"
DEFAULT_PROJECT = 1

_HEX32 = re.compile(rb"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Captured:
    """One envelope as the SDK's HTTP transport would have sent it."""

    raw: bytes  # envelope.serialize(), uncompressed
    body: bytes  # the compressed body exactly as the transport built it
    event_id: str  # the 32-hex id inside ``raw``
    headers: dict[str, str]  # HTTP headers the transport set (auth, UA, type, encoding)
    compression: str | None  # "br", "gzip" or None
    level: int  # compression quality / level the transport used
    sdk_version: str


# --- a realistic failing application, a few frames deep with locals -------------------------------


class PaymentDeclined(Exception):
    """Raised by the fake payment gateway."""


def _gateway_charge(amount_cents: int, currency: str, card: dict, idempotency_key: str) -> dict:
    attempt = 3
    gateway_url = "https://payments.internal.example/v2/charges"  # noqa: F841 - shows in the event
    response = {
        "status": "declined",
        "decline_code": "insufficient_funds",
    }
    raise PaymentDeclined(
        f"charge of {amount_cents} {currency} declined: {response['decline_code']} "
        f"(attempt {attempt}, key {idempotency_key})"
    )


def _charge_order(order: dict) -> dict:
    amount_cents = sum(line["unit_price_cents"] * line["quantity"] for line in order["lines"])
    amount_cents -= order.get("discount_cents", 0)
    card = {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2027, "funding": "debit"}
    idempotency_key = f"order-{order['id']}-charge"
    return _gateway_charge(amount_cents, order["currency"], card, idempotency_key)


def _checkout_view(request: dict) -> dict:
    user = {
        "id": 918273,
        "username": "jdoe",
        "plan": "business",
        "country": "DE",
    }
    order = {
        "id": "ord_7Hc2bX91LmQz",
        "currency": "EUR",
        "lines": [
            {"sku": "SKU-10023", "unit_price_cents": 24900, "quantity": 1},
            {"sku": "SKU-20311", "unit_price_cents": 3999, "quantity": 2},
        ],
        "shipping": "express",
    }
    promotions = [
        {"code": "SPRING10", "amount_cents": 1000, "min_total_cents": 5000},
        {"code": "FREESHIP", "amount_cents": 1490, "min_total_cents": 30000},
    ]
    order["customer_id"] = user["id"]
    subtotal = sum(line["unit_price_cents"] * line["quantity"] for line in order["lines"])
    order["discount_cents"] = sum(
        p["amount_cents"] for p in promotions if p["min_total_cents"] <= subtotal
    )
    return _charge_order(order)


def _capture_app_error(sentry_sdk) -> None:  # noqa: ANN001
    request = {
        "method": "POST",
        "path": "/checkout/confirm",
        "headers": {"Host": "shop.example.com", "Accept": "application/json"},
        "remote_addr": "203.0.113.42",
    }
    try:
        _checkout_view(request)
    except PaymentDeclined:
        sentry_sdk.capture_exception()


# --- capture ------------------------------------------------------------------------------------


def _dsn(public_key: str, project_id: int) -> str:
    return f"http://{public_key}@127.0.0.1:9/{project_id}"


@functools.cache
def capture(public_key: str = DEFAULT_KEY, project_id: int = DEFAULT_PROJECT) -> Captured:
    """Capture one real error envelope from ``sentry-sdk``; cached per (key, project).

    Calls ``sentry_sdk.init`` (and closes that client afterwards), so call it before the process
    sets up any SDK of its own. No network: the transport's send is replaced by a recorder.
    """
    import sentry_sdk
    from sentry_sdk.consts import VERSION
    from sentry_sdk.transport import HttpTransport

    recorded: list[tuple[bytes, dict[str, str], object]] = []

    class _RecordingTransport(HttpTransport):
        """The SDK's HttpTransport; only the final HTTP request is replaced by a recorder."""

        def _send_request(self, body, headers, endpoint_type=None, envelope=None):  # noqa: ANN001
            self._update_headers(headers)  # adds User-Agent and X-Sentry-Auth, as the real one does
            recorded.append((bytes(body), dict(headers), envelope))

    sentry_sdk.init(
        dsn=_dsn(public_key, project_id),
        transport=_RecordingTransport,
        release="shop@4.18.2",
        environment="production",
        server_name="web-3.shop.internal",
        traces_sample_rate=0.0,
        auto_session_tracking=False,
    )
    try:
        _capture_app_error(sentry_sdk)
        sentry_sdk.flush(timeout=10.0)
        client = sentry_sdk.get_client()
        transport = client.transport
        compression = getattr(transport, "_compression_algo", None)
        level = int(getattr(transport, "_compression_level", 0) or 0)
    finally:
        sentry_sdk.get_client().close()  # stops its worker thread; later captures are dropped

    for body, headers, envelope in recorded:
        if envelope is None or not any(item.type == "event" for item in envelope.items):
            continue
        raw = envelope.serialize()
        event_id = envelope.headers.get("event_id") or envelope.get_event()["event_id"]
        # Self-check: our compression of the raw envelope must reproduce the SDK's body exactly.
        if _compress(raw, compression, level) != body:
            raise RuntimeError("re-compressing the envelope did not reproduce the SDK's body")
        return Captured(
            raw=raw,
            body=body,
            event_id=event_id,
            headers=headers,
            compression=compression,
            level=level,
            sdk_version=VERSION,
        )
    raise RuntimeError(f"sentry-sdk sent no error envelope ({len(recorded)} envelopes recorded)")


def _compress(raw: bytes, algo: str | None, level: int) -> bytes:
    if algo == "br":
        return brotli.compress(raw, quality=level)
    if algo == "gzip":
        import gzip
        import io

        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="w", compresslevel=level) as f:
            f.write(raw)
        return out.getvalue()
    return raw


def auth_header(public_key: str = DEFAULT_KEY) -> str:
    """The ``X-Sentry-Auth`` value sentry-sdk sends for ``public_key``."""
    from sentry_sdk.consts import VERSION

    return (
        f"Sentry sentry_key={public_key}, sentry_version=7, sentry_client=sentry.python/{VERSION}"
    )


def request_headers(
    public_key: str = DEFAULT_KEY, project_id: int = DEFAULT_PROJECT
) -> dict[str, str]:
    """The HTTP headers sentry-sdk's transport sets on an envelope POST (without Host/Length)."""
    headers = dict(capture(public_key, project_id).headers)
    headers["X-Sentry-Auth"] = auth_header(public_key)
    return headers


def make_bodies(
    n: int, public_key: str = DEFAULT_KEY, project_id: int = DEFAULT_PROJECT
) -> list[bytes]:
    """Return ``n`` compressed envelope bodies, each with a unique random event id.

    The id is rewritten in the envelope header and in the event payload (same length, so the
    item's ``length`` header stays right), then the envelope is compressed as the SDK does.
    """
    cap = capture(public_key, project_id)
    old = cap.event_id.encode()
    if not _HEX32.match(old):
        raise RuntimeError(f"unexpected event id format: {old!r}")
    parts = cap.raw.split(old)
    if len(parts) < 3:  # at least the envelope header and the event payload
        raise RuntimeError(f"event id found {len(parts) - 1} times in the envelope, expected >= 2")
    algo, level = cap.compression, cap.level
    out = []
    for _ in range(n):
        new = uuid.uuid4().hex.encode()
        out.append(_compress(new.join(parts), algo, level))
    return out


def _main(argv: list[str]) -> int:
    import time

    import orjson

    cap = capture()
    print(f"sentry-sdk {cap.sdk_version}; compression {cap.compression} level {cap.level}")
    print(f"envelope: {len(cap.raw)} bytes raw, {len(cap.body)} bytes compressed")
    lines = cap.raw.split(b"\n")
    for line in lines:
        if line.startswith(b"{") and b'"exception"' in line:
            event = orjson.loads(line)
            print(f"event JSON: {len(line)} bytes; keys: {sorted(event)}")
            frames = event["exception"]["values"][0]["stacktrace"]["frames"]
            print(f"frames: {len(frames)}; vars in last: {sorted(frames[-1].get('vars', {}))}")
    print("headers:")
    for k, v in request_headers().items():
        print(f"  {k}: {v}")
    t0 = time.perf_counter()
    bodies = make_bodies(2000)
    dt = time.perf_counter() - t0
    print(
        f"make_bodies(2000): {dt * 1000:.0f} ms ({dt / 2000 * 1e6:.1f} us/body), "
        f"unique: {len(set(bodies))}"
    )
    if "--dump" in argv:
        sys.stdout.write(brotli.decompress(bodies[0]).decode())
        print()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
