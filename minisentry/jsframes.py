"""Pure helpers of JavaScript symbolication: URL candidates, map discovery, frame rewriting.

No I/O here; ``jssymbolicate.py`` finds the files and calls these. Frame fields are set the way
Sentry does after source-map processing: ``abs_path``, ``filename``, ``module``, ``function``,
``lineno``/``colno`` (1-based), ``context_line``/``pre_context``/``post_context`` and
``data.sourcemap`` (the map's URL).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

__all__ = ["candidate_urls", "join_url", "sourcemap_reference", "inline_sourcemap", "minified_name",
           "apply_token", "generate_module", "MAX_LINE"]

#: Longer source lines are cut around the column, as Sentry shows them.
MAX_LINE = 140
_MAX_SUFFIXES = 10
_REF_RE = re.compile(rb"//[#@]\s*sourceMappingURL=(\S+)\s*$")
_EXTENSION_RE = re.compile(r"\.(?:min\.)?(?:m?[jt]sx?|cjs|cts|mts|coffee|vue|svelte)$")
_AS_RE = re.compile(r"\s*\[as [^\]]*\]$")


def candidate_urls(abs_path: str) -> list[str]:
    """Return the release-file URLs that may hold ``abs_path``, most specific first.

    The URL itself (without fragment), then ``~/path`` with and without its query (``~`` stands for
    any origin, as sentry-cli writes it), then shorter ``~/`` path suffixes for file paths and
    ``app://`` URLs, where the upload's prefix rarely matches the machine's folders.
    """
    url = abs_path.split("#", 1)[0]
    candidates = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return candidates
    path = parts.path
    if parts.scheme in ("http", "https") and parts.netloc:
        if parts.query:
            candidates.append(f"~{path}?{parts.query}")
        candidates.append(f"~{path}")
        return list(dict.fromkeys(candidates))
    if parts.scheme not in ("", "file", "app") or not path:
        return candidates
    segments = [segment for segment in path.split("/") if segment and segment != "."]
    for start in range(min(len(segments), _MAX_SUFFIXES)):
        candidates.append("~/" + "/".join(segments[start:]))
    return list(dict.fromkeys(candidates))


def join_url(base: str, reference: str) -> str:
    """Resolve ``reference`` (a map's ``sources`` entry or a ``sourceMappingURL``) against ``base``.

    Works for URLs, ``~/`` release paths and plain file paths alike.
    """
    if "://" in reference or reference.startswith(("data:", "/")) and not base.startswith("~/"):
        return reference
    if base.startswith("~/"):
        joined = urljoin("http://__tilde__/" + base[2:], reference)
        return "~" + joined[len("http://__tilde__"):] if joined.startswith("http://__tilde__") else joined
    return urljoin(base, reference)


def sourcemap_reference(minified: bytes, headers: dict[str, str] | None = None) -> str | None:
    """Return where a minified file's map is: its ``SourceMap`` header or last ``sourceMappingURL`` comment."""
    for name in ("sourcemap", "x-sourcemap"):
        if headers and headers.get(name):
            return headers[name]
    # The comment is at the end; only the tail is searched (a bundle can be megabytes).
    tail = minified[-65536:]
    for line in reversed(tail.splitlines()[-8:]):
        match = _REF_RE.search(line.strip())
        if match:
            return match.group(1).decode("utf-8", "replace")
    return None


def inline_sourcemap(url: str) -> bytes | None:
    """Return the bytes of a ``data:`` URL map (base64 or percent-encoded), or None if it is not one."""
    if not url.startswith("data:"):
        return None
    meta, sep, payload = url[5:].partition(",")
    if not sep:
        return None
    if meta.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            return None
    return unquote_to_bytes(payload)


def minified_name(function: str | None) -> str | None:
    """The bare minified identifier of a frame's function (``Object.n [as checkout]`` -> ``n``)."""
    if not function or function in ("?", "<anonymous>"):
        return None
    name = _AS_RE.sub("", function).rsplit(".", 1)[-1].strip()
    return name or None


def generate_module(source: str) -> str:
    """A module name from an original source path, stable across machines (grouping uses it).

    ``webpack://app/./src/cart.ts`` -> ``src/cart``; ``../lib/price.js`` -> ``lib/price``.
    """
    path = source
    if "://" in path:
        path = path.split("://", 1)[1]
        path = path.split("/", 1)[1] if "/" in path else path  # drop the host / webpack namespace
    segments = [s for s in path.split("?", 1)[0].split("/") if s and s not in (".", "..", "~")]
    module = "/".join(segments)
    return _EXTENSION_RE.sub("", module) or source


def _filename(abs_path: str, source: str) -> str:
    if source.startswith("webpack:"):
        path = source.split("://", 1)[-1]
        path = path.split("/", 1)[1] if "/" in path else path
        return path if path.startswith(".") else "./" + path.lstrip("/")
    if abs_path.startswith("~/"):
        return abs_path[1:]
    try:
        parts = urlsplit(abs_path)
    except ValueError:
        return abs_path
    return parts.path or abs_path if parts.scheme else abs_path


def _trim(line: str, column: int | None) -> str:
    line = line.rstrip("\r\n")
    if len(line) <= MAX_LINE:
        return line
    start = max(min((column or 0) - MAX_LINE // 2, len(line) - MAX_LINE), 0)
    end = start + MAX_LINE
    return ("{snip} " if start else "") + line[start:end] + (" {snip}" if end < len(line) else "")


def context_of(view: Any, line: int, column: int | None, count: int) -> tuple[list[str], str, list[str]] | None:
    """Return (pre, line, post) around 0-based ``line`` of a source view, or None past its end."""
    total = len(view)
    if not 0 <= line < total:
        return None
    pre = [_trim(view[i] or "", None) for i in range(max(line - count, 0), line)]
    post = [_trim(view[i] or "", None) for i in range(line + 1, min(line + 1 + count, total))]
    return pre, _trim(view[line] or "", column), post


def apply_token(frame: dict[str, Any], token: Any, *, base: str, map_url: str, resolved_with: str,
                source_view: Any, context_lines: int) -> bool:
    """Rewrite ``frame`` from a symbolic token match; return False if the original source has no text.

    ``base`` is what the map's relative ``sources`` resolve against (the map's URL, or the minified
    file's path for debug-id lookups).
    """
    source = token.src or ""
    abs_path = join_url(base, source) if source else base
    frame["abs_path"] = abs_path
    frame["filename"] = _filename(abs_path, source)
    if source:
        frame["module"] = generate_module(source)
    if token.function_name:
        frame["function"] = token.function_name
    frame["lineno"] = token.src_line + 1
    frame["colno"] = token.src_col + 1
    data = frame.get("data") if isinstance(frame.get("data"), dict) else {}
    # Only ``sourcemap`` survives normalization (Relay's frame data schema); how the map was found
    # is in the symbolicator's counters, not the event.
    frame["data"] = {**data, "sourcemap": map_url}
    for name in ("context_line", "pre_context", "post_context"):
        frame.pop(name, None)  # the minified file's lines say nothing about the original
    if source_view is None:
        return False
    context = context_of(source_view, token.src_line, token.src_col, context_lines)
    if context is not None:
        frame["pre_context"], frame["context_line"], frame["post_context"] = context
    return True
