"""Sentry's issue search syntax (the ``query`` of ``GET /api/0/projects/<org>/<project>/issues/``).

Supported, as Sentry writes them: ``is:unresolved``, ``is:resolved``, ``is:ignored`` (``is:muted``
and ``is:archived`` mean ignored too; ``is:unassigned`` matches every issue, nobody is assigned
here), ``level:error``, ``release:1.2.3``, ``environment:production``, a list as
``level:[error,fatal]``, negation as ``!level:info``, values in double quotes
(``release:"my app@1.0"``), and free text (matched against title and culprit; several words are
one phrase). Anything else, such as ``assigned:me`` or a tag search, is refused with BadRequest
naming the key rather than silently ignored. Also ``statsPeriod`` (``24h``, ``14d``, ...) as a
window on last seen. Pure functions: nothing blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import BadRequest
from .stats import parse_duration

__all__ = ["IssueSearch", "parse_query", "parse_period", "KEYS"]

#: Searchable keys besides ``is``: key -> column of issues (level) or events (release, environment).
KEYS = ("level", "release", "environment")
_IS = {"unresolved": "unresolved", "resolved": "resolved", "ignored": "ignored", "muted": "ignored",
       "archived": "ignored"}
_TOKEN = re.compile(r'\s*(!?)([A-Za-z_.]+):("(?:[^"\\]|\\.)*"|\[[^\]]*\]|\S*)|\s*("(?:[^"\\]|\\.)*"|\S+)')
_MAX_QUERY = 1000
_MAX_VALUES = 50


@dataclass(slots=True)
class IssueSearch:
    """A parsed issue query: statuses to keep, key filters, free text, a last-seen window."""

    statuses: list[str] = field(default_factory=list)
    #: ``(key, values, negated)``: ``level:[a,b]`` is ``("level", ["a", "b"], False)``.
    filters: list[tuple[str, list[str], bool]] = field(default_factory=list)
    text: str = ""
    #: Only issues last seen within this many seconds (None: any time).
    period: float | None = None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _values(raw: str) -> list[str]:
    if raw.startswith("[") and raw.endswith("]"):
        values = [_unquote(part.strip()) for part in raw[1:-1].split(",")]
    else:
        values = [_unquote(raw)]
    if not all(values) or len(values) > _MAX_VALUES:
        raise BadRequest("a search value is empty (or a list has more than 50 values)")
    return values


def parse_query(query: str) -> IssueSearch:
    """Parse an issue search string into an IssueSearch. Raises BadRequest (400) for an unknown
    key or ``is:`` value, an empty value, or a query longer than 1000 characters."""
    if len(query) > _MAX_QUERY:
        raise BadRequest("the query is too long (1000 characters at most)")
    search = IssueSearch()
    words: list[str] = []
    position = 0
    text = query.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:  # only whitespace is left
            break
        position = match.end()
        negated, key, raw, word = match.groups()
        if key is None:
            words.append(_unquote(word))
            continue
        values = _values(raw)
        if key == "is":
            if negated:
                raise BadRequest("!is: is not supported; use is: with the statuses you want")
            for value in values:
                if value == "unassigned":
                    continue
                if value not in _IS:
                    raise BadRequest(f"is:{value[:40]} is not supported (is:unresolved, is:resolved, is:ignored)")
                search.statuses.append(_IS[value])
        elif key in KEYS:
            search.filters.append((key, values, bool(negated)))
        else:
            raise BadRequest(f"searching by {key[:40]!r} is not supported (is, {', '.join(KEYS)}, free text)")
    search.text = " ".join(word for word in words if word)
    return search


def parse_period(value: str) -> float | None:
    """``statsPeriod`` (``90m``, ``24h``, ``14d``, ``2w``) in seconds; ``""`` is None (any time).
    Raises BadRequest for anything else."""
    if not value:
        return None
    return float(parse_duration(value, "statsPeriod"))
