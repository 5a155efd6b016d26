"""The parts of a minidump upload that need unpacking before the envelope is built.

- **Compressed minidumps**: crash reporters may gzip, bzip2, xz or zstd the dump file itself (not
  the HTTP body). The compression is recognised by its magic bytes and undone with a hard limit on
  the decompressed size, so a small bomb is refused after inflating at most ``limit`` bytes.
- **Nested form data**: Electron's crash reporter may send, as the dump file, a whole
  ``multipart/form-data`` body whose own ``upload_file_minidump`` field holds the dump.
- **msgpack payloads** from the native SDKs: a ``__sentry-event`` file holds the event,
  ``__sentry-breadcrumb1`` and ``__sentry-breadcrumb2`` the two halves of a breadcrumb ring buffer.
  They are read into the event and are not kept as attachments.

Everything here is CPU only (no blocking I/O). Errors are InvalidMultipart with the outcome reason
Relay uses (``invalid_compression``, ``invalid_minidump``, ``invalid_msgpack``) or PayloadTooLarge.
"""

from __future__ import annotations

import bz2
import lzma
from datetime import datetime, timezone
from typing import Any, Callable

import msgpack

from .decoding import BodyDecoder
from .errors import BadRequest, InvalidMultipart, PayloadTooLarge
from .multipart import parse_multipart

__all__ = ["MINIDUMP_FIELD", "unpack_minidump", "read_msgpack_event", "merge_breadcrumbs", "MAX_BREADCRUMBS"]

#: The form field holding the minidump (Sentry's and Breakpad's name).
MINIDUMP_FIELD = "upload_file_minidump"
#: A minidump starts with ``MDMP`` (little-endian writers) or ``PMDM`` (big-endian).
MINIDUMP_MAGICS = (b"MDMP", b"PMDM")
#: The most breadcrumbs an event keeps, as the SDKs and Relay do.
MAX_BREADCRUMBS = 100
_STEP = 64 * 1024


def _stream(decompressor: Any, data: bytes, limit: int, name: str) -> bytes:
    # bz2 and lzma decompressors take max_length: inflate one bounded step at a time.
    out: list[bytes] = []
    size = 0
    pending = data
    while not decompressor.eof:
        chunk = decompressor.decompress(pending, _STEP)
        pending = b""
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the minidump inflates past {limit} bytes")
        out.append(chunk)
        if not chunk and decompressor.needs_input:
            raise InvalidMultipart(f"truncated {name} minidump", reason="invalid_compression")
    return b"".join(out)


def _decode_with(encoding: str) -> Callable[[bytes, int], bytes]:
    def decode(data: bytes, limit: int) -> bytes:
        decoder = BodyDecoder(encoding, limit)
        decoder.feed(data)
        return decoder.finish()
    return decode


_COMPRESSIONS: tuple[tuple[bytes, str, Callable[[bytes, int], bytes]], ...] = (
    (b"\x1f\x8b", "gzip", _decode_with("gzip")),
    (b"\x28\xb5\x2f\xfd", "zstd", _decode_with("zstd")),
    (b"BZh", "bzip2", lambda data, limit: _stream(bz2.BZ2Decompressor(), data, limit, "bzip2")),
    (b"\xfd7zXZ\x00", "xz", lambda data, limit: _stream(lzma.LZMADecompressor(lzma.FORMAT_XZ), data, limit, "xz")),
)


def _decompress(data: bytes, limit: int) -> bytes:
    for magic, name, decode in _COMPRESSIONS:
        if data.startswith(magic):
            try:
                return decode(data, limit)
            except PayloadTooLarge as exc:
                raise PayloadTooLarge(f"the minidump inflates past {limit} bytes") from exc
            except BadRequest as exc:
                raise InvalidMultipart(f"the {name} minidump is corrupt: {exc.detail}",
                                       reason="invalid_compression") from exc
            except (OSError, EOFError, lzma.LZMAError) as exc:
                raise InvalidMultipart(f"the {name} minidump is corrupt: {exc}", reason="invalid_compression") from exc
    return data


def _nested_minidump(data: bytes, limits: Any) -> bytes | None:
    # Electron: the "dump" is itself a form body; its first line is the boundary.
    first_line = data[:200].split(b"\r\n", 1)[0]
    if not first_line.startswith(b"--") or len(first_line) < 3:
        return None
    boundary = first_line[2:].decode("latin-1")
    try:
        parts = parse_multipart(data, f'multipart/form-data; boundary="{boundary}"', limits)
    except InvalidMultipart:
        return None
    inner = next((p for p in parts if p.name == MINIDUMP_FIELD), None)
    return inner.data if inner is not None else None


def unpack_minidump(data: bytes, limit: int, multipart_limits: Any = None) -> bytes:
    """Return the raw minidump from an uploaded file: decompressed and un-nested, magic checked.

    Raises InvalidMultipart (``invalid_compression``: corrupt compressed data; ``invalid_minidump``:
    not a minidump) or PayloadTooLarge past ``limit`` decompressed bytes.
    """
    data = _decompress(data, limit)
    if data[:4] not in MINIDUMP_MAGICS:
        nested = _nested_minidump(data, multipart_limits)
        if nested is not None:
            data = _decompress(nested, limit)
    if data[:4] not in MINIDUMP_MAGICS:
        raise InvalidMultipart("upload_file_minidump is not a minidump (it does not start with 'MDMP')",
                               reason="invalid_minidump")
    return data


def _unpack(data: bytes, name: str) -> Any:
    try:
        # The input is bounded by the file-size limit, and unpackb never allocates past its input.
        # TypeError: a map key that cannot be a dict key (a list).
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException, msgpack.ExtraData, TypeError) as exc:
        raise InvalidMultipart(f"{name} is not valid msgpack: {exc}", reason="invalid_msgpack") from exc


def read_msgpack_event(data: bytes) -> dict[str, Any]:
    """The event a native SDK packed into ``__sentry-event``. Raises InvalidMultipart (``invalid_msgpack``)."""
    event = _unpack(data, "__sentry-event")
    if not isinstance(event, dict) or not all(isinstance(key, str) for key in event):
        raise InvalidMultipart("__sentry-event must hold a map with string keys", reason="invalid_msgpack")
    return event


def merge_breadcrumbs(first: bytes | None, second: bytes | None) -> list[dict[str, Any]]:
    """Merge the two halves of a native SDK's breadcrumb ring buffer, oldest first.

    Each file holds one breadcrumb or a list of them. The SDK writes one file until it is full,
    then the other, so together they hold the newest crumbs; keep as many as the longer file held
    (at most MAX_BREADCRUMBS), by timestamp. Raises InvalidMultipart (``invalid_msgpack``).
    """
    halves = []
    for name, data in (("__sentry-breadcrumb1", first), ("__sentry-breadcrumb2", second)):
        if data is None:
            halves.append([])
            continue
        value = _unpack(data, name)
        crumbs = value if isinstance(value, list) else [value]
        halves.append([crumb for crumb in crumbs if isinstance(crumb, dict)])
    keep = min(max(len(halves[0]), len(halves[1])), MAX_BREADCRUMBS)
    merged = sorted(halves[0] + halves[1], key=_timestamp)
    return merged[len(merged) - keep:] if keep else []


def _timestamp(crumb: dict[str, Any]) -> float:
    value = crumb.get("timestamp")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value[:40])
        except ValueError:
            return 0.0
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    return 0.0  # no usable time: sorted first rather than refused
