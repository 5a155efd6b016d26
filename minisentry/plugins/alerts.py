"""Registers the built-in alert channels: ``webhook``, ``slack`` and ``email`` (see alert_channels.py)."""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl


@hookimpl
def minisentry_register_alert_channels() -> list[Any]:
    """The built-in channels; imported here so loading the plugin manager stays cheap."""
    from ..alert_channels import EmailChannel, SlackChannel, WebhookChannel

    return [WebhookChannel(), SlackChannel(), EmailChannel()]
