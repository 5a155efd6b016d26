"""minisentry's one error tree.

Library exceptions (sqlite3, orjson, brotli, zlib, zstandard, httptools, tomllib, sentry_relay)
are translated at the boundary with ``raise X(...) from exc``; callers only ever see these::

    MinisentryError
    ├── ConfigError                 the config file or a setting is wrong (the operator's fault)
    │   └── KillSwitchError         a kill-switch name or value is invalid (names the switch and field)
    ├── PluginError                 a plugin failed to load or registered something invalid
    ├── InvalidItem                 a plugin's item type refused one item (also a ValueError): outcome invalid(reason)
    ├── RequestError                the client sent something we refuse; carries an HTTP status
    │   ├── BadRequest              400: malformed HTTP, envelope, JSON or encoding
    │   │   ├── InvalidEnvelope     400: the envelope framing or headers are broken
    │   │   └── InvalidMultipart    400: a multipart/form-data body (minidump upload) is broken
    │   ├── AuthMissing             401: no credentials at all
    │   ├── RelayAuthFailed         401: a relay's signature is missing, malformed, wrong or stale
    │   ├── AuthForbidden           403: unknown/disabled key, or a key of another project
    │   │   └── CsrfRejected        403: a web UI form came without its session's CSRF token
    │   ├── NotFound                404: no such route, project or object
    │   ├── MethodNotAllowed        405
    │   ├── PayloadTooLarge         413: over a size limit (checked after decompression)
    │   ├── UnsupportedEncoding     415: a Content-Encoding we do not decode
    │   ├── RateLimited             429: a quota rejected everything (with X-Sentry-Rate-Limits)
    │   └── PipelineFull            429: the pipeline cannot take more right now
    │       └── SpoolFull           429: ... and the on-disk spool is at its byte limit too
    ├── StorageError                the event store failed (disk full, corrupt file, locked)
    │   ├── UserExists              a web UI user with that email is already stored
    │   └── TokenExists             an API token with that name is already stored
    ├── BackendError                a channel or shared-state backend (Kafka, Redis) failed
    │   ├── CodecError              a message record cannot be encoded or decoded
    │   └── BackendFull             a bounded backend is at its configured limit and refused the data
    ├── UpstreamError               the upstream minisentry (``[upstream]``) could not be reached or refused
    ├── ScrubbingError              Relay could not scrub an event: it is never stored
    ├── ArtifactError               an uploaded bundle, source file or debug file is unusable (bad zip, bad map, no debug id)
    ├── FetchError                  fetching a source file over HTTP failed (status, size, time, transport)
    │   └── FetchRefused            ... refused by the SSRF policy (address, host, scheme) before connecting
    ├── AlertDeliveryError          an alert could not be delivered to a target (``retryable`` says if trying again may help)
    │   └── AlertRefused            ... refused by the webhook SSRF policy (address, scheme) before connecting
    └── PipelineError               a stage crashed or the pipeline was used in the wrong state

Per-item failures (an event that cannot be normalized) are *not* exceptions that stop a stage: they
become outcomes (see ``outcomes.py``). An exception escaping a stage means the stage is broken.
"""

from __future__ import annotations

__all__ = [
    "MinisentryError",
    "ConfigError",
    "KillSwitchError",
    "PluginError",
    "InvalidItem",
    "RequestError",
    "BadRequest",
    "InvalidEnvelope",
    "InvalidMultipart",
    "AuthMissing",
    "RelayAuthFailed",
    "AuthForbidden",
    "CsrfRejected",
    "NotFound",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "UnsupportedEncoding",
    "PipelineFull",
    "RateLimited",
    "SpoolFull",
    "StorageError",
    "UserExists",
    "TokenExists",
    "BackendError",
    "CodecError",
    "BackendFull",
    "UpstreamError",
    "ScrubbingError",
    "ArtifactError",
    "FetchError",
    "FetchRefused",
    "AlertDeliveryError",
    "AlertRefused",
    "PipelineError",
]


class MinisentryError(Exception):
    """Base of every error minisentry raises on purpose."""


class ConfigError(MinisentryError):
    """The configuration is invalid; the message names the file and the offending key."""


class KillSwitchError(ConfigError):
    """A kill-switch name or value is invalid; the message names the switch, condition and field."""


class PluginError(MinisentryError):
    """A plugin failed to load, or registered something invalid; the message names the plugin."""


class InvalidItem(MinisentryError, ValueError):
    """A plugin item type's ``parse`` refused one item; it gets outcome ``invalid`` with ``reason``.

    Also a ValueError, so a plugin's parser may raise either; a plain ValueError is given the reason
    ``invalid_<item type>``.
    """

    def __init__(self, detail: str, *, reason: str = "invalid_item") -> None:
        super().__init__(detail)
        self.reason = reason[:64]


class RequestError(MinisentryError):
    """A client request that is refused with ``status``; ``detail`` is shown to the client.

    ``reason`` is the outcome reason recorded for the refused data (e.g. ``too_large``).
    """

    status = 400
    reason = "invalid"

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason


class BadRequest(RequestError):
    """400: the request is malformed."""

    status = 400
    reason = "payload"


class InvalidEnvelope(BadRequest):
    """400: the envelope's framing, headers or item lengths are broken."""

    reason = "invalid_envelope"


class InvalidMultipart(BadRequest):
    """400: a multipart/form-data body (a minidump upload) is malformed or misses its minidump."""

    reason = "invalid_multipart"


class AuthMissing(RequestError):
    """401: the request carries no credentials."""

    status = 401
    reason = "auth_missing"


class RelayAuthFailed(RequestError):
    """401: a request claiming to come from a relay is not signed, or not signed right (``relayauth.py``)."""

    status = 401
    reason = "relay_auth"


class AuthForbidden(RequestError):
    """403: the key is unknown, disabled or belongs to another project."""

    status = 403
    reason = "project_id"


class CsrfRejected(AuthForbidden):
    """403: a web UI POST whose CSRF token is missing or not its session's (or sign-in form's)."""

    reason = "csrf"


class NotFound(RequestError):
    """404: no such route or object."""

    status = 404
    reason = "not_found"


class MethodNotAllowed(RequestError):
    """405: the route exists but not for this method."""

    status = 405
    reason = "method"


class PayloadTooLarge(RequestError):
    """413: a size limit was exceeded (limits apply to decompressed bytes, while streaming)."""

    status = 413
    reason = "too_large"


class UnsupportedEncoding(RequestError):
    """415: the Content-Encoding is not one of identity, gzip, deflate, br, zstd."""

    status = 415
    reason = "payload"


class PipelineFull(RequestError):
    """429: the pipeline's first channel stayed full; the client should retry after ``retry_after``."""

    status = 429
    reason = "backpressure"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class SpoolFull(PipelineFull):
    """429: the on-disk spool (``spool.py``) would exceed its ``max_bytes``; answered like PipelineFull."""

    reason = "spool_full"


class RateLimited(RequestError):
    """429: a quota rejected everything in the request; carries the ``X-Sentry-Rate-Limits`` value."""

    status = 429
    reason = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int, rate_limits: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.rate_limits = rate_limits


class StorageError(MinisentryError):
    """The event store failed (I/O error, corrupt or locked database)."""


class UserExists(StorageError):
    """A web UI user with that email is already stored (``minisentry users create``)."""


class TokenExists(StorageError):
    """An API token with that name is already stored (``minisentry tokens create``)."""


class BackendError(MinisentryError):
    """A channel or shared-state backend (Kafka, Redis) failed or is unreachable."""


class CodecError(BackendError):
    """A message record cannot be encoded, or a received record is not one we can decode."""


class BackendFull(BackendError):
    """A bounded backend refused data at its configured limit; the message names the limit."""
class UpstreamError(MinisentryError):
    """The upstream minisentry could not be reached, or refused a request; ``status`` is its answer (0: none).

    ``retryable`` says whether trying again later may succeed (connection errors, 5xx, a 429 without
    rate limits); a 4xx is permanent.
    """

    def __init__(self, detail: str, *, status: int = 0, retryable: bool = True) -> None:
        super().__init__(detail)
        self.status = status
        self.retryable = retryable


class ScrubbingError(MinisentryError):
    """Relay could not scrub an event; it must not be stored (outcome ``invalid``, ``reason``)."""

    reason = "scrubbing_failed"


class ArtifactError(MinisentryError):
    """An uploaded bundle, source file or debug file cannot be used; ``kind`` is the event error type it becomes."""

    def __init__(self, detail: str, *, kind: str = "js_invalid_source") -> None:
        super().__init__(detail)
        self.kind = kind


class FetchError(MinisentryError):
    """Fetching a minified file or source map failed; ``kind`` is the event error type it becomes."""

    def __init__(self, detail: str, *, kind: str = "fetch_generic_error") -> None:
        super().__init__(detail)
        self.kind = kind


class FetchRefused(FetchError):
    """The fetcher's SSRF policy refused a URL (scheme, host or resolved address) before connecting."""


class AlertDeliveryError(MinisentryError):
    """An alert did not reach its target (webhook, Slack, email, a plugin's channel).

    ``retryable`` says whether trying again later may succeed: connection errors, timeouts, 5xx and
    429 answers, SMTP 4xx replies are; a 4xx answer, a redirect or a refused address are not.
    """

    def __init__(self, detail: str, *, retryable: bool = True) -> None:
        super().__init__(detail)
        self.retryable = retryable


class AlertRefused(AlertDeliveryError):
    """The webhook SSRF policy refused a URL (scheme, credentials, a non-public address); never retried."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retryable=False)


class PipelineError(MinisentryError):
    """A stage crashed, or the pipeline was used in a state that does not allow it."""
