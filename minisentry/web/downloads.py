"""Attachment downloads from the web UI: a safe ``Content-Disposition`` and the response headers.

A stored attachment is served as ``application/octet-stream`` whatever type the SDK declared, with
``X-Content-Type-Options: nosniff`` and as an attachment, so an uploaded HTML or SVG file is saved,
never rendered on the UI's origin. The SDK-chosen filename is reduced to a base name without
control characters or quotes; a non-ASCII one is also sent as RFC 6266/5987 ``filename*``.
Pure functions: nothing blocks or raises.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

__all__ = ["safe_filename", "content_disposition"]

_MAX_NAME = 200
# Characters a quoted filename may not carry: controls, quotes, backslashes, path separators.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\/;]')
# RFC 5987 attr-char, the characters ``filename*`` may carry unencoded.
_ATTR_CHARS = "!#$&+-.^_`|~"


def safe_filename(filename: str) -> str:
    """The base name of ``filename`` without control characters, quotes or separators; never empty."""
    base = re.split(r"[/\\]", filename or "")[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")  # controls, bidi overrides
    base = _UNSAFE.sub("_", base).strip(" .")
    return base[:_MAX_NAME] or "attachment"


def content_disposition(filename: str) -> str:
    """``attachment; filename="..."`` (ASCII, non-ASCII characters as ``_``), plus ``filename*=UTF-8''...``
    when the name is not plain ASCII."""
    name = safe_filename(filename)
    ascii_name = "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in name)
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"
    return value
