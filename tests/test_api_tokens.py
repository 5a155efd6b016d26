"""API tokens: scopes, 401/403, stored hashed, revoked at once, the tokens CLI; fuzzing the PUT body and query."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minisentry.errors import BadRequest
from minisentry.issue_query import parse_period, parse_query
from minisentry.issue_status import form_change, parse_change

from .api_helpers import Api, api, make_token, run_cli  # noqa: F401 (api: the fixture)
from .conftest import TOKEN, base_config, write_config
from .web.test_web_e2e import query



def get(api: Api, path: str, token: str | None, method: str = "GET", **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.request(method, f"{api.server.url}{path}", headers=headers, **kwargs)


@pytest.mark.e2e
def test_scopes_decide_and_the_refusal_names_the_missing_scope(api):
    issue_id = api.issue_of(api.send())
    issues = "/api/0/projects/acme/demo/issues/"
    assert get(api, issues, None).status_code == 401
    assert get(api, issues, "msy_unknown").status_code == 403
    reader = make_token(api.server.config_path, "reader", "project:read")
    assert get(api, "/api/0/projects/", reader).status_code == 200
    refused = get(api, issues, reader)
    assert refused.status_code == 403 and "event:read" in refused.json()["detail"]
    events = make_token(api.server.config_path, "events", "event:read")
    assert get(api, issues, events).status_code == 200
    put = get(api, f"/api/0/issues/{issue_id}/", events, "PUT", json={"status": "resolved"})
    assert put.status_code == 403 and "event:write" in put.json()["detail"]
    stats = get(api, "/api/0/organizations/acme/stats_v2/", events)
    assert stats.status_code == 403 and "org:read" in stats.json()["detail"]
    # project:write may change issues, as in Sentry.
    writer = make_token(api.server.config_path, "writer", "project:write,event:read")
    assert get(api, f"/api/0/issues/{issue_id}/", writer, "PUT", json={"status": "resolved"}).status_code == 200
    # The config's tokens read everything and change nothing.
    assert get(api, issues, TOKEN, params={"query": ""}).status_code == 200
    assert get(api, "/api/0/organizations/acme/stats_v2/", TOKEN).status_code == 200
    config_put = get(api, f"/api/0/issues/{issue_id}/", TOKEN, "PUT", json={"status": "unresolved"})
    assert config_put.status_code == 403 and "event:write" in config_put.json()["detail"]


@pytest.mark.e2e
def test_tokens_are_stored_hashed_and_revoking_works_at_once(api):
    assert api.client.get("/api/0/projects/").status_code == 200
    db_bytes = b"".join(path.read_bytes() for path in api.db.parent.glob("store.sqlite*"))
    assert api.token.encode() not in db_bytes
    hashed = hashlib.sha256(api.token.encode()).hexdigest()
    assert query(api.db, "SELECT name FROM api_tokens WHERE token_hash = ?", hashed) == [("all",)]
    listed = run_cli(api.server.config_path, "tokens", "list", "--json")
    (row,) = json.loads(listed.stdout)
    assert row["name"] == "all" and row["last_used"] is not None and api.token not in listed.stdout
    assert run_cli(api.server.config_path, "tokens", "revoke", "all").exit_code == 0
    assert api.client.get("/api/0/projects/").status_code == 403


def test_tokens_cli_create_list_revoke(tmp_path):
    config = write_config(tmp_path / "minisentry.toml", base_config(tmp_path))
    created = run_cli(config, "tokens", "create", "--name", "ci", "--scopes", "event:read, event:write")
    assert created.exit_code == 0, created.output
    (token,) = created.stdout.split()
    assert token.startswith("msy_") and len(token) > 40 and "shown only now" in created.stderr
    listing = run_cli(config, "tokens", "list")
    assert listing.exit_code == 0
    assert "ci" in listing.stdout and "event:read,event:write" in listing.stdout and "never" in listing.stdout
    assert token not in listing.stdout
    again = run_cli(config, "tokens", "create", "--name", "ci", "--scopes", "event:read")
    assert again.exit_code == 1 and "already exists" in again.output
    unknown = run_cli(config, "tokens", "create", "--name", "x", "--scopes", "event:read,root")
    assert unknown.exit_code == 2 and "unknown scope 'root'" in unknown.output
    assert run_cli(config, "tokens", "revoke", "ci").stdout.strip() == "revoked token 'ci'"
    missing = run_cli(config, "tokens", "revoke", "ci")
    assert missing.exit_code == 1 and "no token named 'ci'" in missing.output
    assert "no tokens" in run_cli(config, "tokens", "list").stdout


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=30) | st.sampled_from(["resolved", "ignored", "unresolved", "resolvedInNextRelease",
                                             "2030-01-01T00:00:00Z", "ignoreCount", "inNextRelease"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["status", "statusDetails", "ignoreCount", "ignoreUntil", "ignoreDuration",
                         "inNextRelease", "substatus", "other"]) | st.text(max_size=10), children, max_size=4),
    max_leaves=12)
bodies = st.fixed_dictionaries({}, optional={
    "status": json_values | st.sampled_from(["resolved", "ignored", "unresolved", "resolvedInNextRelease"]),
    "statusDetails": st.dictionaries(st.sampled_from(["ignoreCount", "ignoreUntil", "ignoreDuration",
                                                      "inNextRelease", "ignoreWindow", "x"]), json_values, max_size=3),
}) | json_values
query_text = st.text(max_size=80) | st.lists(st.sampled_from(
    ["is:unresolved", "is:ignored", "!level:error", "level:[error,fatal]", 'release:"a b"', "environment:",
     "foo", '"quoted', "is:", "!is:resolved", "key:value", "[", "]", ":", "!", '"', "\\"]), max_size=6).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(body=bodies, now=st.floats(min_value=0, max_value=4e9))
def test_the_put_body_parser_raises_only_bad_request(body, now):
    try:
        parse_change(body, now=now)
    except BadRequest:
        pass


@settings(max_examples=200, deadline=None)
@given(form=st.dictionaries(st.sampled_from(["status", "ignore", "count", "until", "x"]), st.text(max_size=30)))
def test_the_ui_form_parser_raises_only_bad_request(form):
    try:
        form_change(form, now=1e9)
    except BadRequest:
        pass


@settings(max_examples=400, deadline=None)
@given(text=query_text, period=st.text(max_size=8))
def test_the_query_parser_raises_only_bad_request(text, period):
    for call in (lambda: parse_query(text), lambda: parse_period(period)):
        try:
            call()
        except BadRequest:
            pass


@pytest.mark.e2e
def test_fuzzed_puts_and_queries_over_http_are_200_204_or_400(api):
    issue_id = api.issue_of(api.send(release="1.0"))
    api.send(function="other")

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=bodies, raw=st.binary(max_size=40), text=query_text, bulk=st.booleans())
    def check(body, raw, text, bulk):
        path = "/api/0/projects/acme/demo/issues/" if bulk else f"/api/0/issues/{issue_id}/"
        params = {"id": issue_id, "query": text} if bulk else {}
        response = api.client.put(path, params=params, content=json.dumps(body).encode())
        assert response.status_code in (200, 204, 400), (body, response.text)
        assert api.client.put(path, params=params, content=raw).status_code in (200, 204, 400)
        listed = api.client.get("/api/0/projects/acme/demo/issues/", params={"query": text, "statsPeriod": "24h"})
        assert listed.status_code in (200, 400), (text, listed.text)
        if listed.status_code == 400:
            assert listed.json()["detail"]

    check()
