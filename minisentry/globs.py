"""Relay-style globs for inbound filters: parse, compile and match, case-insensitively.

The syntax follows Relay's patterns (``relay-pattern``, used case-insensitively by
``GlobPatterns``): ``*`` any run of characters (newlines too), ``?`` one character,
``[abc]``/``[a-z]``/``[!a-z]`` one character in/not in a set, ``{a,b}`` alternatives (not nested),
``\\`` makes the next character literal. A glob must match the *whole* string; an empty string is
never matched. Case is ignored as Relay ignores it: text and pattern are both lowercased (str.lower
is Unicode's lowercase mapping, as Rust's to_lowercase), then compared exactly; that is also several
times faster in Python's re than re.IGNORECASE on long alternations.

Unlike Relay, which silently ignores a glob it cannot parse, :func:`parse_glob` raises, so config
loading can refuse it. Globs with at most one run of stars (``lit``, ``pre*``, ``*suf``,
``pre*suf``, ``*mid*``) are joined into one regex, which cannot backtrack badly on that shape;
globs with more stars use a linear segment-by-segment match, so a message crafted against
``*a*a*a*b`` cannot stall a worker.

:func:`lowercase_alternation` builds the fixed lists (extension errors, crawlers) matched the same
way, on lowercased text.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["GlobSet", "lowercase_alternation", "parse_glob"]

_MAX_VARIANTS = 256
_STAR = None  # a token is (regex source, length in characters of lowercased text), or _STAR


def parse_glob(pattern: str) -> list[list[tuple[str, int]]]:
    """Parse ``pattern`` into one variant per ``{a,b}`` choice, each its star-separated segments.

    A segment is (regex source for lowercased text, length in characters). Runs of stars count as
    one, so middle segments are never empty. Pure CPU, never blocks. Raises ValueError naming what
    is wrong (empty glob, unbalanced or nested brackets/braces, dangling backslash, reversed range,
    too many ``{...}`` combinations).
    """
    if not pattern:
        raise ValueError("an empty glob never matches")
    variants = []
    for tokens in _expand(pattern):
        segments: list[tuple[str, int]] = []
        current: list[tuple[str, int]] = []
        for token in tokens:
            if token is not _STAR:
                current.append(token)
            elif current or not segments:  # the head (maybe empty) or a middle; "**" adds nothing
                segments.append(_joined(current))
                current = []
        segments.append(_joined(current))  # the tail, maybe empty
        variants.append(segments)
    return variants


def _joined(tokens: list[tuple[str, int]]) -> tuple[str, int]:
    return "".join(source for source, _ in tokens), sum(length for _, length in tokens)


def _expand(pattern: str) -> list[list[Any]]:
    """Tokenize, one token list per combination of ``{a,b}`` choices. Raises ValueError."""
    variants: list[list[Any]] = [[]]
    group: list[list[Any]] | None = None  # the alternatives of the open {...}
    current: list[Any] = []
    i, end = 0, len(pattern)
    while i < end:
        char = pattern[i]
        i += 1
        if char == "*":
            current.append(_STAR)
        elif char == "?":
            current.append((".", 1))
        elif char == "[":
            source, i = _char_class(pattern, i)
            current.append((source, 1))
        elif char == "]":
            raise ValueError("unbalanced ']' (escape it as '\\]')")
        elif char == "{":
            if group is not None:
                raise ValueError("nested '{' is not supported")
            variants = [v + current for v in variants]
            group, current = [], []
        elif char == "}":
            if group is None:
                raise ValueError("unbalanced '}' (escape it as '\\}')")
            group.append(current)
            variants = [v + choice for v in variants for choice in group]
            if len(variants) > _MAX_VARIANTS:
                raise ValueError(f"more than {_MAX_VARIANTS} combinations of {{...}} choices")
            group, current = None, []
        elif char == "," and group is not None:
            group.append(current)
            current = []
        else:
            if char == "\\":
                if i == end:
                    raise ValueError("dangling '\\' at the end")
                char = pattern[i]
                i += 1
            lowered = char.lower()
            current.append((re.escape(lowered), len(lowered)))
    if group is not None:
        raise ValueError("unclosed '{'")
    return [v + current for v in variants]


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """Parse a class after its '['; return (regex source for lowercased text, index after ']')."""
    negated = pattern.startswith("!", i)
    i += negated
    ranges: list[list[str]] = []
    first, in_range = True, False
    while True:
        if i == len(pattern):
            raise ValueError("unclosed '['")
        char = pattern[i]
        i += 1
        if char == "]":
            break
        if char == "[":
            raise ValueError("'[' inside a character class (escape it as '\\[')")
        if char == "-" and first:
            ranges.append(["-", "-"])
        elif char == "-" and not in_range:
            in_range = True
        else:
            if char == "\\":
                if i == len(pattern):
                    raise ValueError("dangling '\\' at the end")
                char = pattern[i]
                i += 1
            if in_range:
                if char < ranges[-1][0]:
                    raise ValueError(f"invalid range {ranges[-1][0]}-{char}")
                ranges[-1][1] = char
                in_range = False
            else:
                ranges.append([char, char])
        first = False
    if in_range:
        ranges.append(["-", "-"])  # a trailing '-' is literal
    if not ranges:
        return ("." if negated else "(?!)"), i
    items = []
    for lo, hi in ranges:
        items.append((lo, hi))
        low_lo, low_hi = lo.lower(), hi.lower()
        # The text is lowercased, so [A-Z] must also take what A..Z lowercase to.
        if (low_lo, low_hi) != (lo, hi) and len(low_lo) == len(low_hi) == 1 and low_lo <= low_hi:
            items.append((low_lo, low_hi))
    body = "".join(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in items)
    return f"[{'^' if negated else ''}{body}]", i


class GlobSet:
    """Several globs matched as one; see the module docstring for the syntax.

    Construction compiles the patterns (pure CPU, never blocks) and raises ValueError for a glob
    that does not parse (TypeError for one that is not a string), unless ``skip_invalid``: then,
    as in Relay, that glob matches nothing. A GlobSet is falsy when it holds no glob.
    """

    __slots__ = ("simple", "segmented")

    def __init__(self, patterns: tuple[str, ...], *, skip_invalid: bool = False) -> None:
        simple, segmented = [], []
        for pattern in patterns:
            try:
                variants = parse_glob(pattern)
            except (ValueError, TypeError):
                if skip_invalid:
                    continue  # as Relay: a glob that does not parse matches nothing
                raise
            for segments in variants:
                sources = [source for source, _ in segments]
                if len(segments) <= 2 or (len(segments) == 3 and not sources[0] and not sources[2]):
                    # At most one run of stars, or "*x*": a regex cannot backtrack badly on these.
                    simple.append(".*".join(sources))
                else:
                    segmented.append(tuple((re.compile(source, re.DOTALL) if source else None, length)
                                           for source, length in segments))
        self.simple = re.compile("|".join(f"(?:{s})" for s in simple), re.DOTALL) if simple else None
        self.segmented = tuple(segmented)

    def __bool__(self) -> bool:
        return self.simple is not None or bool(self.segmented)

    def matches(self, text: Any) -> bool:
        """True if ``text`` is a non-empty string that some glob matches entirely, ignoring case.

        Any value is accepted (non-strings never match); never blocks, never raises.
        """
        if not isinstance(text, str) or not text:
            return False
        text = text.lower()
        if self.simple is not None and self.simple.fullmatch(text) is not None:
            return True
        return any(_segments_match(segments, text) for segments in self.segmented)


def _segments_match(segments: tuple[tuple[re.Pattern[str] | None, int], ...], text: str) -> bool:
    # Used for globs with two or more runs of stars. Every segment matches exactly its length, so
    # the leftmost place for each middle segment is always right: the classic linear glob match.
    (head, head_len), (tail, tail_len) = segments[0], segments[-1]
    start, stop = 0, len(text)
    if head is not None:
        if head.match(text) is None:
            return False
        start = head_len
    if tail is not None:
        stop -= tail_len
        if stop < start or tail.fullmatch(text, stop) is None:
            return False
    for segment, _ in segments[1:-1]:
        found = segment.search(text, start, stop)
        if found is None:
            return False
        start = found.end()
    return True


def lowercase_alternation(*parts: str) -> re.Pattern[str]:
    """Compile regex ``parts`` as one alternation to search *lowercased* text with. Never blocks.

    The parts are lowercased too, so they must use only lowercase escapes (``\\s`` ``\\d`` ``\\.``).
    Raises re.error for an invalid part.
    """
    return re.compile("|".join(part.lower() for part in parts))
