"""The built-in alert channels: ``webhook`` (generic JSON), ``slack`` (Slack-compatible) and ``email`` (SMTP).

They are registered through ``minisentry_register_alert_channels`` like any plugin's channel
(``minisentry/plugins/alerts.py``), so they use nothing a plugin could not. The contract:

- ``type``: the name targets use (``{type = "webhook", url = ...}``);
- ``validate_target(target)`` (optional): raise ValueError saying what is wrong (checked at startup);
- ``bind(config)`` (optional): return the object that delivers (e.g. with a connection pool), or None
  when the channel cannot run with this config;
- ``async deliver(alert, target)``: send one alert; raise AlertDeliveryError (``retryable`` or not);
- ``async aclose()`` (optional): release what ``bind`` opened.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import anyio
import orjson

from .alert_http import WebhookPoster
from .alert_model import Alert, email_body, email_subject, slack_payload, webhook_payload
from .config_alerts import SmtpConfig, validate_builtin_target
from .errors import AlertDeliveryError

__all__ = ["WebhookChannel", "SlackChannel", "EmailChannel"]


class _PostingChannel:
    """Shared by webhook and slack: one SSRF-safe connection pool per bound channel."""

    type = ""

    def __init__(self, poster: WebhookPoster | None = None) -> None:
        self._poster = poster

    validate_target = staticmethod(validate_builtin_target)

    def bind(self, config: Any) -> "_PostingChannel":
        """A channel with its own pool, using ``[alerts]`` timeout, concurrency and address policy. Never blocks."""
        alerts = config.alerts
        return type(self)(WebhookPoster(timeout=alerts.timeout, allow_private=alerts.allow_private_addresses,
                                        max_connections=alerts.concurrency))

    def body(self, alert: Alert) -> dict[str, Any]:
        """The JSON body for ``alert``."""
        raise NotImplementedError

    async def deliver(self, alert: Alert, target: dict[str, Any]) -> None:
        """POST the alert's JSON to ``target["url"]``. Raises AlertRefused or AlertDeliveryError."""
        assert self._poster is not None, "deliver() on an unbound channel"
        headers = {"X-Minisentry-Alert-Id": alert.id, **target.get("headers", {})}
        await self._poster.post_json(target["url"], orjson.dumps(self.body(alert)), headers)

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._poster is not None:
            await self._poster.aclose()


class WebhookChannel(_PostingChannel):
    """``{type = "webhook", url = "...", headers = {...}}``: Sentry-style issue-alert JSON."""

    type = "webhook"

    def body(self, alert: Alert) -> dict[str, Any]:
        """The generic webhook payload (``alert_model.webhook_payload``)."""
        return webhook_payload(alert)


class SlackChannel(_PostingChannel):
    """``{type = "slack", url = "https://hooks.slack.com/..."}``: ``{"text", "blocks"}``."""

    type = "slack"

    def body(self, alert: Alert) -> dict[str, Any]:
        """The Slack payload (``alert_model.slack_payload``)."""
        return slack_payload(alert)


class EmailChannel:
    """``{type = "email", to = ["ops@example.com"]}``: a plain-text mail through ``[alerts.smtp]``."""

    type = "email"
    validate_target = staticmethod(validate_builtin_target)

    def __init__(self, smtp: SmtpConfig | None = None, timeout: float = 10.0) -> None:
        self.smtp = smtp
        self.timeout = timeout

    def bind(self, config: Any) -> "EmailChannel | None":
        """A channel sending through ``[alerts.smtp]``; None without a host. Never blocks."""
        alerts = config.alerts
        return EmailChannel(alerts.smtp, alerts.timeout) if alerts.smtp.host else None

    def message(self, alert: Alert, to: list[str]) -> EmailMessage:
        """The mail for ``alert`` (subject ``[minisentry] New issue in <project>: <title>``)."""
        assert self.smtp is not None
        message = EmailMessage()
        message["From"] = self.smtp.from_address
        message["To"] = ", ".join(to)
        message["Subject"] = email_subject(alert)
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain="minisentry")
        message["X-Minisentry-Alert-Id"] = alert.id
        message.set_content(email_body(alert))
        return message

    async def deliver(self, alert: Alert, target: dict[str, Any]) -> None:
        """Send the mail in a worker thread (smtplib blocks; each socket step is bounded by the timeout).

        Raises AlertDeliveryError: retryable for connection errors and 4xx replies, not for 5xx.
        """
        message = self.message(alert, list(target["to"]))
        await anyio.to_thread.run_sync(self._send, message, list(target["to"]))

    def _send(self, message: EmailMessage, to: list[str]) -> None:
        smtp = self.smtp
        assert smtp is not None
        port = smtp.port or {"ssl": 465, "starttls": 587, "none": 25}[smtp.security]
        try:
            if smtp.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, port, timeout=self.timeout,
                                                        context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(smtp.host, port, timeout=self.timeout)
            with client:
                if smtp.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if smtp.username:
                    client.login(smtp.username, smtp.password)
                client.send_message(message, from_addr=smtp.from_address, to_addrs=to)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise AlertDeliveryError(f"SMTP {smtp.host} refused every recipient: {codes}",
                                     retryable=all(400 <= code < 500 for code in codes)) from exc
        except smtplib.SMTPResponseException as exc:
            raise AlertDeliveryError(f"SMTP {smtp.host} answered {exc.smtp_code}: {exc.smtp_error[:200]!r}",
                                     retryable=400 <= exc.smtp_code < 500) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise AlertDeliveryError(f"SMTP {smtp.host}: {exc}", retryable=False) from exc
        except (smtplib.SMTPServerDisconnected, OSError, socket.timeout) as exc:
            raise AlertDeliveryError(f"SMTP {smtp.host}:{port}: {type(exc).__name__}: {exc}") from exc
        except (smtplib.SMTPException, ValueError) as exc:
            raise AlertDeliveryError(f"SMTP {smtp.host}: {exc}", retryable=False) from exc
