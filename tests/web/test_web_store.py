"""The web UI's parts without a server: the store's users/sessions/issue triage, passwords, escaping,
the ``[web]`` config section and ``minisentry users create``."""

from __future__ import annotations

import sqlite3
import time

import pytest
from click.testing import CliRunner

from minisentry.backends.sqlite import SqliteStore
from minisentry.cli import cli
from minisentry.errors import ConfigError, CsrfRejected, NotFound, UserExists
from minisentry.plugin_manager import make_plugin_manager
from minisentry.web.html import Markup, escape, render
from minisentry.web.passwords import hash_password, verify_password
from minisentry.web.sessions import check_csrf

from ..backends.test_sqlite_store import PROJECTS, event
from ..conftest import write_config, base_config


@pytest.fixture
def store(tmp_path):
    with SqliteStore(tmp_path / "store.sqlite") as store:
        store.seed_projects(PROJECTS)
        yield store


def test_set_issue_status_refuses_unknown_issues_and_statuses(store):
    with pytest.raises(NotFound):
        store.set_issue_status(999, "resolved")
    with pytest.raises(ValueError):
        store.set_issue_status(1, "deleted")


def test_search_issues_by_text_status_level_with_sorts_and_pages(store):
    store.write_batch([event(1, group_hash="a", title="ValueError: 100%_done", timestamp=10.0),
                       event(2, group_hash="b", title="KeyError: cart", timestamp=20.0),
                       event(3, group_hash="b", title="KeyError: cart", timestamp=30.0)], [])
    titles = lambda **kw: [i["title"] for i in store.search_issues(1, **kw)]  # noqa: E731
    assert titles() == ["KeyError: cart", "ValueError: 100%_done"]
    assert titles(sort="first_seen") == ["KeyError: cart", "ValueError: 100%_done"]
    assert titles(sort="count") == ["KeyError: cart", "ValueError: 100%_done"]
    assert titles(query="100%_") == ["ValueError: 100%_done"]  # LIKE wildcards are literal
    assert titles(query="%") == ["ValueError: 100%_done"]
    assert titles(query="app.main") == ["KeyError: cart", "ValueError: 100%_done"]  # the culprit
    assert titles(level="warning") == []
    assert titles(status="resolved") == []
    assert titles(limit=1, offset=1) == ["ValueError: 100%_done"]
    assert titles(sort="'; DROP TABLE issues; --") == ["KeyError: cart", "ValueError: 100%_done"]


def test_users_are_unique_and_sessions_expire_and_are_bounded(store):
    user_id = store.create_user("a@example.com", "scrypt$x")
    with pytest.raises(UserExists):
        store.create_user("a@example.com", "scrypt$y")
    assert store.user_by_email("a@example.com")["id"] == user_id
    assert store.user_by_email("b@example.com") is None
    store.create_web_session("expired", user_id, time.time() - 1, max_sessions=3)
    assert store.web_session_user("expired") is None
    for n in range(5):
        store.create_web_session(f"s{n}", user_id, time.time() + 60, max_sessions=3)
    rows = store._run(lambda c: c.execute("SELECT token_hash FROM web_sessions ORDER BY created").fetchall())
    assert [row[0] for row in rows] == ["s2", "s3", "s4"]  # the expired and the oldest ones are gone
    assert store.web_session_user("s4")["email"] == "a@example.com"
    store.delete_web_session("s4")
    assert store.web_session_user("s4") is None


def test_passwords_are_salted_scrypt_hashes():
    first, second = hash_password("secret password"), hash_password("secret password")
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert verify_password("secret password", first)
    assert not verify_password("secret passwort", first)
    assert not verify_password("secret password", None)
    assert not verify_password("secret password", "md5$abc")
    assert not verify_password("secret password", "scrypt$zz$8$1$00$00")


def test_escaping_and_csrf_check():
    assert render("<p>$x</p>", x="<b>\"'&") == "<p>&lt;b&gt;&quot;&#x27;&amp;</p>"
    assert render("<p>$x</p>", x=Markup("<b>ok</b>")) == "<p><b>ok</b></p>"
    assert escape(None) == ""
    check_csrf("token", {"csrf_token": "token"})
    for form in ({}, {"csrf_token": ""}, {"csrf_token": "other"}):
        with pytest.raises(CsrfRejected):
            check_csrf("token", form)
    with pytest.raises(CsrfRejected):
        check_csrf("", {"csrf_token": ""})


@pytest.mark.parametrize("web, message", [
    ({"colour": "blue"}, "unknown key 'web.colour'"),
    ({"session_max_age": 0}, "web.session_max_age must be greater than 0"),
    ({"page_size": 101}, "web.page_size must be at most 100"),
    ({"secure_cookies": "yes"}, "web.secure_cookies must be bool"),
])
def test_web_config_is_validated_at_load(make_config, web, message):
    with pytest.raises(ConfigError, match=message):
        make_config(web=web)


def test_users_create_cli_stores_a_hash(tmp_path):
    config = write_config(tmp_path / "minisentry.toml", base_config(tmp_path))
    runner = CliRunner()
    args = ["--config", str(config), "users", "create", "Admin@Example.com", "--password-stdin"]
    result = runner.invoke(cli, args, input="long enough password\n", obj={"pm": make_plugin_manager()})
    assert result.exit_code == 0, result.output
    assert "created user 1 (admin@example.com)" in result.output
    again = runner.invoke(cli, args, input="long enough password\n", obj={"pm": make_plugin_manager()})
    assert again.exit_code == 1 and "already exists" in again.output
    short = runner.invoke(cli, [*args[:4], "b@example.com", "--password-stdin"], input="short\n",
                          obj={"pm": make_plugin_manager()})
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    with sqlite3.connect(tmp_path / "store.sqlite") as conn:
        ((stored,),) = conn.execute("SELECT password_hash FROM users").fetchall()
    assert stored.startswith("scrypt$") and "long enough" not in stored
    assert verify_password("long enough password", stored)


def test_users_list_delete_and_set_password_cli_end_sessions(tmp_path):
    from minisentry.backends.sqlite import SqliteStore
    from minisentry.web.sessions import hash_token

    config = write_config(tmp_path / "minisentry.toml", base_config(tmp_path))
    runner = CliRunner()

    def run(*args, stdin=None):
        return runner.invoke(cli, ["--config", str(config), "users", *args], input=stdin,
                             obj={"pm": make_plugin_manager()})

    assert "no users" in run("list").output
    for email in ("a@example.com", "b@example.com"):
        assert run("create", email, "--password-stdin", stdin="long enough password\n").exit_code == 0
    with SqliteStore(tmp_path / "store.sqlite") as store:
        store.create_web_session(hash_token("tok-a"), 1, time.time() + 3600, max_sessions=10)
        store.create_web_session(hash_token("tok-b"), 2, time.time() + 3600, max_sessions=10)
    listed = run("list").output.splitlines()
    assert listed[1].split()[:2] == ["1", "a@example.com"] and listed[1].split()[-1] == "1"
    assert listed[2].split()[:2] == ["2", "b@example.com"]

    changed = run("set-password", "A@example.com", "--password-stdin", stdin="a brand new password\n")
    assert changed.exit_code == 0 and "ended their sessions" in changed.output
    deleted = run("delete", "b@example.com")
    assert deleted.exit_code == 0, deleted.output
    with SqliteStore(tmp_path / "store.sqlite") as store:
        assert store.web_session_user(hash_token("tok-a")) is None  # signed out by the new password
        assert store.web_session_user(hash_token("tok-b")) is None
        assert verify_password("a brand new password", store.user_by_email("a@example.com")["password_hash"])
        assert store.user_by_email("b@example.com") is None
    missing = run("delete", "nobody@example.com")
    assert missing.exit_code == 1 and "no user 'nobody@example.com'" in missing.output
    short = run("set-password", "a@example.com", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output
