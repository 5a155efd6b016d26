"""``[alerts]`` is validated at load: precise errors naming the key, and nothing but ConfigError for any input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry.config import config_from_dict, load_config
from minisentry.errors import ConfigError

WEBHOOK = {"type": "webhook", "url": "https://hooks.example.com/minisentry"}


def rule(**fields):
    return {"name": "ops", "on": ["new_issue"], "targets": [WEBHOOK], **fields}


def load(alerts):
    return config_from_dict({"alerts": alerts}).alerts


def test_defaults_and_a_full_section(monkeypatch):
    assert load({}).rules == () and load({}).allow_private_addresses is False and load({}).poll_interval == 1.0
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    alerts = load({"timeout": 5, "smtp": {"host": "mail.example.com", "password": {"env": "SMTP_PASSWORD"},
                                          "from_address": "alerts@example.com"},
                   "rules": [rule(on=["new_issue", "regression", "monitor_failed"], projects=["demo"],
                                  min_level="warning", max_per_hour=5,
                                  targets=[WEBHOOK, {"type": "slack", "url": "https://hooks.slack.com/x"},
                                           {"type": "email", "to": ["ops@example.com"]},
                                           {"type": "pagerduty", "routing_key": "abc"}])]})
    assert alerts.smtp.password == "s3cret" and alerts.timeout == 5.0
    (ops,) = alerts.rules
    assert ops.max_per_hour == 5 and [t["type"] for t in ops.targets] == ["webhook", "slack", "email", "pagerduty"]


@pytest.mark.parametrize("alerts, message", [
    ({"pollinterval": 1}, "unknown key 'alerts.pollinterval'"),
    ({"poll_interval": 0}, "alerts.poll_interval must be greater than 0"),
    ({"max_queue": "many"}, "alerts.max_queue must be int"),
    ({"smtp": {"hots": "x"}}, "unknown key 'alerts.smtp.hots'"),
    ({"smtp": {"security": "tls"}}, "alerts.smtp.security must be 'starttls', 'ssl' or 'none'"),
    ({"rules": {"name": "x"}}, "'alerts.rules' must be an array of tables"),
    ({"rules": [{"on": ["new_issue"], "targets": [WEBHOOK]}]}, "alerts.rules[0] is missing required key(s) name"),
    ({"rules": [rule(), rule()]}, "alerts.rules[1].name must be a unique"),
    ({"rules": [rule(on=["new_issues"])]}, "alerts.rules[0].on must list some of new_issue, regression"),
    ({"rules": [rule(on=[])]}, "alerts.rules[0].on must list"),
    ({"rules": [rule(min_level="critical")]}, "alerts.rules[0].min_level must be one of debug"),
    ({"rules": [rule(max_per_hour=0)]}, "alerts.rules[0].max_per_hour must be at least 1"),
    ({"rules": [rule(targets=[])]}, "alerts.rules[0].targets must name at least one target"),
    ({"rules": [rule(targets=[{"url": "https://x"}])]}, "alerts.rules[0].targets[0].type must be a target type"),
    ({"rules": [rule(targets=[{"type": "webhook", "url": "ftp://x/"}])]},
     "alerts.rules[0].targets[0].url: only http and https"),
    ({"rules": [rule(targets=[{"type": "webhook", "url": "https://user:pw@x/"}])]}, "URLs with credentials"),
    ({"rules": [rule(targets=[{"type": "webhook", "url": "https://x/", "method": "PUT"}])]},
     "alerts.rules[0].targets[0]: unknown key 'method' for a webhook target"),
    ({"rules": [rule(targets=[{"type": "webhook", "url": "https://x/", "headers": {"X-A": "1\r\nX-B: 2"}}])]},
     "targets[0].headers must be a table"),
    ({"rules": [rule(targets=[{"type": "email", "to": "ops@example.com"}])]},
     "targets[0].to must be a non-empty list of email addresses"),
    ({"smtp": {"host": "mail"}, "rules": [rule(targets=[{"type": "email", "to": ["not an address"]}])]},
     "targets[0].to must be"),
    ({"rules": [rule(targets=[{"type": "email", "to": ["ops@example.com"]}])]}, "needs [alerts.smtp] host"),
    ({"rules": [rule(targets=[{"type": "webhook", "url": {"env": "NO_SUCH_VARIABLE_SET"}}])]},
     "reads environment variable 'NO_SUCH_VARIABLE_SET'"),
])
def test_broken_sections_name_the_key(alerts, message):
    with pytest.raises(ConfigError) as info:
        load(alerts)
    assert message in str(info.value)


def test_a_toml_file_error_names_the_file_and_key(tmp_path):
    path = tmp_path / "minisentry.toml"
    path.write_text('[alerts]\n[[alerts.rules]]\nname = "ops"\non = ["new_issue"]\n'
                    'targets = [{ type = "slack", url = "hooks.slack.com/x" }]\n')
    with pytest.raises(ConfigError, match=r"minisentry.toml: alerts.rules\[0\].targets\[0\].url: only http"):
        load_config(path)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                     max_leaves=20)
_keys = st.sampled_from(["name", "on", "targets", "projects", "min_level", "max_per_hour", "type", "url", "to",
                         "headers", "poll_interval", "smtp", "rules", "host", "security", "enabled"])
_shaped = st.recursive(_json, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=5),
                       max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(alerts=_shaped)
def test_any_input_is_loaded_or_refused_with_a_config_error(alerts):
    try:
        load(alerts)
    except ConfigError:
        pass
