"""Credential extraction: header, query and DSN forms, fuzzed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from minisentry.auth import check_key_format, key_from_dsn, key_from_headers, key_from_query, parse_auth_header
from minisentry.errors import AuthForbidden

KEY = "0123456789abcdef0123456789abcdef"


def test_header_forms():
    header = f"Sentry sentry_version=7, sentry_client=sentry.python/2.75.0, sentry_key={KEY}"
    assert key_from_headers({"x-sentry-auth": header}) == KEY
    assert key_from_headers({"authorization": header}) == KEY
    assert key_from_headers({"authorization": f"Bearer {KEY}"}) is None
    assert key_from_headers({}) is None
    assert parse_auth_header(f"sentry_key = {KEY} ,sentry_secret=x") == {"sentry_key": KEY, "sentry_secret": "x"}


def test_query_and_dsn():
    assert key_from_query(f"sentry_version=7&sentry_key={KEY}") == KEY
    assert key_from_query("sentry_version=7") is None
    assert key_from_dsn(f"https://{KEY}@o1.ingest.example.com/42") == KEY
    assert key_from_dsn(f"https://{KEY}:secret@host/1") == KEY
    assert key_from_dsn("https://host/1") is None
    assert key_from_dsn(17) is None


def test_key_format():
    assert check_key_format(KEY.upper()) == KEY
    for bad in ("", "xyz", KEY + "0", KEY[:-1] + "g", KEY + "\n0"):
        try:
            check_key_format(bad)
        except AuthForbidden:
            continue
        raise AssertionError(f"{bad!r} accepted")


@given(st.text(max_size=300))
def test_fuzz_header_and_query_parsers_never_raise(text):
    parse_auth_header(text)
    key_from_headers({"x-sentry-auth": text})
    key_from_headers({"authorization": "Sentry " + text})
    key_from_query(text)
    key_from_query("sentry_key=" + text)


@given(st.one_of(st.text(max_size=300), st.none(), st.integers(), st.lists(st.text())))
def test_fuzz_dsn_and_key_format(value):
    result = key_from_dsn(value)
    assert result is None or isinstance(result, str)
    if isinstance(value, str):
        try:
            assert len(check_key_format(value)) == 32
        except AuthForbidden:
            pass
