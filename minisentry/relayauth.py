"""Relay-to-relay authentication: ed25519 credentials, signed requests, and their verification.

An edge relay owns a credentials file (``minisentry relay credentials``)::

    {"id": "<uuid>", "public_key": "<base64url, 32 bytes>", "secret_key": "<base64url, 32-byte seed>"}

Every request it sends upstream carries two headers::

    X-Sentry-Relay-Id: <uuid>
    X-Sentry-Relay-Signature: <base64url(signature)>.<base64url({"t": <unix seconds>})>

The signature is ed25519 over ``<the base64url header part> NUL <body>``, where the body is the
request body after any Content-Encoding is undone. The timestamp inside the signed part lets the
upstream refuse signatures older (or further in the future) than ``max_age`` seconds, so a captured
request cannot be replayed later; within that window a replayed envelope is harmless because the
store deduplicates on (project, event id). The upstream accepts only the relays listed under
``[[relays]]`` in its config. No I/O except :func:`load_credentials` / :meth:`RelayCredentials.save`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import AuthForbidden, ConfigError, RelayAuthFailed

__all__ = ["RelayCredentials", "RelayVerifier", "generate_credentials", "load_credentials", "parse_public_key",
           "RELAY_ID_HEADER", "SIGNATURE_HEADER"]

RELAY_ID_HEADER = "X-Sentry-Relay-Id"
SIGNATURE_HEADER = "X-Sentry-Relay-Signature"
# Generous for one base64url signature (86 chars) and a small JSON header; anything longer is junk.
_MAX_SIGNATURE_CHARS = 512
_RELAY_ID_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Decode unpadded base64url; raises ValueError for anything else."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64url: {exc}") from exc


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Read a base64url ed25519 public key (32 bytes). Raises ValueError if it is not one."""
    raw = _b64decode(text.strip())
    if len(raw) != 32:
        raise ValueError(f"an ed25519 public key has 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class RelayCredentials:
    """One relay's identity: its id and ed25519 key pair. Signing never blocks."""

    relay_id: str
    secret_key: Ed25519PrivateKey

    @property
    def public_key(self) -> str:
        """The base64url public key an upstream lists under ``[[relays]] public_key``."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return _b64encode(self.secret_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, body: bytes, *, now: float | None = None) -> dict[str, str]:
        """Return the two headers that authenticate ``body`` as sent by this relay at ``now``."""
        header = _b64encode(json.dumps({"t": time.time() if now is None else now}).encode())
        signature = self.secret_key.sign(header.encode("ascii") + b"\x00" + body)
        return {RELAY_ID_HEADER: self.relay_id, SIGNATURE_HEADER: f"{_b64encode(signature)}.{header}"}

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the credentials as JSON readable only by the owner. Blocks on file I/O.

        Raises ConfigError if the file exists (unless ``overwrite``) or cannot be written.
        """
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        seed = self.secret_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        data = json.dumps({"id": self.relay_id, "public_key": self.public_key, "secret_key": _b64encode(seed)},
                          indent=2) + "\n"
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(data)
        except FileExistsError as exc:
            raise ConfigError(f"{path}: credentials file exists (pass --overwrite to replace it)") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write credentials: {exc}") from exc


def generate_credentials() -> RelayCredentials:
    """Make a fresh relay id and key pair. Does not block."""
    return RelayCredentials(str(uuid.uuid4()), Ed25519PrivateKey.generate())


def load_credentials(path: str | os.PathLike[str]) -> RelayCredentials:
    """Read a credentials file written by :meth:`RelayCredentials.save`. Blocks on file I/O.

    Raises ConfigError naming the file when it is missing, not JSON, or its keys do not match.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        relay_id, public, secret = raw["id"], raw["public_key"], raw["secret_key"]
        if not isinstance(relay_id, str) or not _RELAY_ID_RE.fullmatch(relay_id):
            raise ValueError(f"id {relay_id!r} is not a relay id")
        seed = _b64decode(secret)
        if len(seed) != 32:
            raise ValueError("secret_key must be 32 bytes")
        credentials = RelayCredentials(relay_id, Ed25519PrivateKey.from_private_bytes(seed))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read relay credentials: {exc}") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: not a relay credentials file: {exc}") from exc
    if credentials.public_key != public:
        raise ConfigError(f"{path}: public_key does not belong to secret_key")
    return credentials


class RelayVerifier:
    """Checks the signature headers of requests from relays listed in ``[[relays]]``.

    ``trusted`` maps relay id → base64url public key (validated by the config loader);
    ``max_age`` bounds how far the signed timestamp may be from now, either way. Never blocks.
    """

    def __init__(self, trusted: Mapping[str, str], *, max_age: float) -> None:
        self.max_age = max_age
        self._keys = {relay_id: parse_public_key(key) for relay_id, key in trusted.items()}

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> str:
        """Return the relay id whose valid, fresh signature ``headers`` carry for ``body``.

        ``headers`` has lowercase names. Raises RelayAuthFailed (401) when the headers are missing,
        malformed, the signature does not match or its timestamp is outside ``max_age``, and
        AuthForbidden (403) for a relay that is not in ``[[relays]]``.
        """
        relay_id = headers.get(RELAY_ID_HEADER.lower())
        signature = headers.get(SIGNATURE_HEADER.lower())
        if not relay_id:
            raise RelayAuthFailed(f"missing {RELAY_ID_HEADER} header")
        if not signature:
            raise RelayAuthFailed(f"missing {SIGNATURE_HEADER} header")
        relay_id = relay_id.strip()
        key = self._keys.get(relay_id)
        if key is None:
            raise AuthForbidden(f"unknown relay {relay_id[:64]!r}: not listed in [[relays]]", reason="relay_unknown")
        signed, timestamp = _parse_signature(signature)
        try:
            key.verify(signed[0], signed[1].encode("ascii") + b"\x00" + body)
        except InvalidSignature as exc:
            raise RelayAuthFailed("relay signature does not match the body") from exc
        now = time.time() if now is None else now
        if abs(now - timestamp) > self.max_age:
            raise RelayAuthFailed(f"relay signature is stale (signed {now - timestamp:.0f}s ago; "
                                  f"limit {self.max_age:g}s)")
        return relay_id


def _parse_signature(value: str) -> tuple[tuple[bytes, str], float]:
    """Split ``<sig>.<header>`` into (signature bytes, header text) and the signed timestamp.

    Raises RelayAuthFailed for anything malformed.
    """
    value = value.strip()
    if len(value) > _MAX_SIGNATURE_CHARS:
        raise RelayAuthFailed("malformed relay signature: too long")
    parts = value.split(".")
    if len(parts) != 2:
        raise RelayAuthFailed("malformed relay signature: expected <signature>.<header>")
    try:
        signature = _b64decode(parts[0])
        header = json.loads(_b64decode(parts[1]))
    except ValueError as exc:  # also json.JSONDecodeError and UnicodeDecodeError
        raise RelayAuthFailed(f"malformed relay signature: {exc}") from exc
    if len(signature) != 64:
        raise RelayAuthFailed("malformed relay signature: an ed25519 signature has 64 bytes")
    timestamp = header.get("t") if isinstance(header, dict) else None
    try:
        if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or not math.isfinite(timestamp):
            raise ValueError(timestamp)
        return (signature, parts[1]), float(timestamp)
    except (ValueError, OverflowError) as exc:
        raise RelayAuthFailed("malformed relay signature: the signed header has no timestamp 't'") from exc
