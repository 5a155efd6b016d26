"""Relay signatures: credentials files, signing, and what the verifier refuses (fuzzed with Hypothesis)."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry.cli import cli
from minisentry.errors import AuthForbidden, ConfigError, RelayAuthFailed, RequestError
from minisentry.relayauth import (RELAY_ID_HEADER, SIGNATURE_HEADER, RelayVerifier, generate_credentials,
                                  load_credentials)

CREDENTIALS = generate_credentials()
OTHER = generate_credentials()
BODY = b'{"publicKeys": ["0123456789abcdef0123456789abcdef"]}'


def verifier(max_age: float = 60.0) -> RelayVerifier:
    return RelayVerifier({CREDENTIALS.relay_id: CREDENTIALS.public_key}, max_age=max_age)


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def test_a_signed_body_verifies_and_names_the_relay():
    assert verifier().verify(lower(CREDENTIALS.sign(BODY)), BODY) == CREDENTIALS.relay_id


@pytest.mark.parametrize("case", ["unsigned", "no id", "other body", "other key", "stale", "future", "unknown relay"])
def test_refusals(case):
    now = time.time()
    headers = lower(CREDENTIALS.sign(BODY, now=now))
    body = BODY
    expected: type[RequestError] = RelayAuthFailed
    if case == "unsigned":
        del headers[SIGNATURE_HEADER.lower()]
    elif case == "no id":
        del headers[RELAY_ID_HEADER.lower()]
    elif case == "other body":
        body = BODY + b" "
    elif case == "other key":  # right id, signed with someone else's key
        headers[SIGNATURE_HEADER.lower()] = lower(OTHER.sign(BODY, now=now))[SIGNATURE_HEADER.lower()]
    elif case == "stale":
        headers = lower(CREDENTIALS.sign(BODY, now=now - 61))
    elif case == "future":
        headers = lower(CREDENTIALS.sign(BODY, now=now + 61))
    elif case == "unknown relay":
        headers = lower(OTHER.sign(BODY, now=now))
        expected = AuthForbidden
    with pytest.raises(expected) as info:
        verifier().verify(headers, body, now=now)
    assert info.value.status == (403 if expected is AuthForbidden else 401)


@settings(max_examples=300, deadline=None)
@given(signature=st.text(max_size=600), relay_id=st.text(max_size=80), body=st.binary(max_size=64))
def test_fuzzed_headers_are_refused_with_a_request_error_never_a_crash(signature, relay_id, body):
    headers = {RELAY_ID_HEADER.lower(): relay_id, SIGNATURE_HEADER.lower(): signature}
    with pytest.raises((RelayAuthFailed, AuthForbidden)):
        verifier().verify(headers, body)


@settings(max_examples=300, deadline=None)
@given(header=st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8).map(lambda value: json.dumps({"t": value}).encode())), tamper=st.integers(0, 85))
def test_fuzzed_signed_parts_with_the_real_relay_id_are_refused(header, tamper):
    # A real signature with its signed header swapped or a character flipped never verifies.
    import base64

    signature, _ = CREDENTIALS.sign(BODY)[SIGNATURE_HEADER].split(".")
    flipped = signature[:tamper] + ("A" if signature[tamper] != "A" else "B") + signature[tamper + 1:]
    encoded = base64.urlsafe_b64encode(header).rstrip(b"=").decode()
    for value in (f"{signature}.{encoded}", f"{flipped}.{encoded}"):
        headers = {RELAY_ID_HEADER.lower(): CREDENTIALS.relay_id, SIGNATURE_HEADER.lower(): value}
        with pytest.raises(RelayAuthFailed):
            verifier().verify(headers, BODY)


def test_credentials_round_trip_and_bad_files(tmp_path):
    path = tmp_path / "relay.json"
    CREDENTIALS.save(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    loaded = load_credentials(path)
    assert (loaded.relay_id, loaded.public_key) == (CREDENTIALS.relay_id, CREDENTIALS.public_key)
    with pytest.raises(ConfigError, match="exists"):
        CREDENTIALS.save(path)
    raw = json.loads(path.read_text())
    raw["public_key"] = OTHER.public_key
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="does not belong"):
        load_credentials(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not a relay credentials file"):
        load_credentials(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_credentials(tmp_path / "missing.json")


def test_cli_writes_credentials_and_prints_the_relays_entry(tmp_path):
    path = tmp_path / "relay.json"
    result = CliRunner().invoke(cli, ["relay", "credentials", str(path)], obj={})
    assert result.exit_code == 0, result.output
    credentials = load_credentials(path)
    assert f'id = "{credentials.relay_id}"' in result.output
    assert f'public_key = "{credentials.public_key}"' in result.output
    again = CliRunner().invoke(cli, ["relay", "credentials", str(path)], obj={})
    assert again.exit_code != 0 and "exists" in again.output
