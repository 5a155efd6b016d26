"""An exact fast path for Sentry's default scrubbing: "could any rule change this event?"

Most events contain nothing Sentry's default data-scrubbing rules would touch (SDKs with
``send_default_pii=False`` already drop cookies and auth headers), yet Relay's engine costs ~1 ms
per event to find that out. :class:`Precheck` answers the question in pure Python over the event's
JSON encoding; when it says "no", :mod:`minisentry.scrubbing` returns the event without calling
Relay, otherwise Relay scrubs it as before. The answer is exact by construction as long as every
check here is a *superset* of the rules' triggers: a false "maybe" costs a Relay call, a false "no"
would store PII, so every simplification below only ever matches more.

What the rules are (read from Relay's ``relay-pii`` sources for ``sentry-relay`` 0.10.1, confirmed by
the differential tests in ``tests/test_scrub_precheck.py``), and the check that covers each:

* value patterns applied to every string (``@common:filter`` and the replace-only rules on
  ``$logentry.formatted``): card numbers (15+ digits with single ``-``/whitespace separators),
  US SSNs (``ddd-dd-dddd``), IBANs (two capitals, two digits, 11+ letters/digits), PEM blocks
  (``-----BEGIN``), credentials in URLs (``//user:pass@``), bearer tokens (``bearer``);
* the password rule, which filters a value when its *key* or *the value itself* contains
  password/secret/passwd/api key/apikey/auth/credentials/mysql_pwd/private key/token, or is exactly
  ``otp``/``two_factor``: checked as substrings of every key and value alike;
* ``sensitive_fields`` (a ``redact_pair`` rule Relay matches case-sensitively against keys and
  values): each field as a substring, checked case-insensitively here (a superset);
* rules bound to keys (sensitive cookie names, cookie header attributes, with
  ``scrub_ip_addresses`` the known IP fields): the key, compared exactly, anywhere in the event;
* with ``scrub_ip_addresses``, IPv4 and IPv6 addresses anywhere;
* e-mail addresses, replaced only in ``logentry.formatted`` and gen_ai/MCP span data.

Relay also rewrites some ``_meta`` on its way through (errors, remarks, original values), so the
fast path only takes events whose ``_meta`` holds nothing but the normalizer's trimmed-length notes
(:func:`only_lengths_in_meta`), which Relay returns as they are.

Relay's own ``@userpath:filter`` (listed in ``@common:filter``) is not defined, so user paths are
left alone; IMEIs, MACs and UUIDs are not in the defaults. ``safe_fields`` only remove fields from
scrubbing, so a superset ignores them. Any configuration this module has not analysed (advanced
``pii_config`` rules, an unknown rule or selector shape, another ``sentry-relay`` version) gets no
precheck: :func:`precheck_for` returns None and every event goes to Relay.
"""

from __future__ import annotations

import math
import re
import unicodedata
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterable

__all__ = ["ANALYSED_RELAY_VERSION", "Precheck", "floats_survive_relay", "only_lengths_in_meta", "precheck_for",
           "relay_timestamp"]

#: The ``sentry-relay`` release whose rules this module was checked against.
ANALYSED_RELAY_VERSION = "0.10.1"

# Substrings of the password rule's key/value pattern; "api" and "private" are followed up by a
# regex (a bare "key" is far too common: "idempotency_key").
_WORDS = (b"passw", b"secret", b"auth", b"token", b"bearer", b"credential", b"mysql_pwd",
          # Relay runs a GraphQL variable scrubber keyed on request.api_target == "graphql".
          b"graphql")
_API_KEY = re.compile(rb"api[-_]?key")  # literal prefixes keep these two searches fast
_PRIVATE_KEY = re.compile(rb"private[-_]?key")
# Whole strings the password rule matches (^otp$, ^two[-_]factor$).
_EXACT_PASSWORD_WORDS = (b"otp", b"two_factor", b"two-factor")
_URL_AUTH = re.compile(rb"//[A-Za-z0-9%_.-]+:[A-Za-z0-9%_.-]+@")
_EMAIL = re.compile(rb"@[A-Za-z0-9-]+\.")
# The JSON escapes of whitespace control characters, which can separate card-number digits.
_ESCAPED_SPACES = (b"\\n", b"\\t", b"\\r", b"\\f", b"\\u000b")
# Such an escape can only separate card digits if a digit follows it.
_ESCAPED_SPACE_DIGIT = re.compile(rb"\\(?:[nrtf]|u000b)[0-9]")
# Skeletons for the digit patterns: every ASCII digit becomes "0", letters "A"/"a" except a
# lowercase "e" (kept, so exponents stand out: orjson writes "1e+16", "5e-7"), and the ends of
# JSON values ("}", "]") become "," so that a number's end looks the same everywhere.
_SHAPE = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdfghijklmnopqrstuvwxyz}]",
                         b"0" * 10 + b"A" * 26 + b"a" * 25 + b",,")
# A number with an exponent, as orjson writes it, in the skeleton (the sign is always there).
_EXPONENTS = (b"0e+0", b"0e-0")
_DIGIT_OR_DOT = frozenset(b"0.")
_DIGITS = bytes.maketrans(b"0123456789", b"0" * 10)
_CARD = b"0" * 15  # the shortest card (Amex) once separators are gone
_SSN = b"000-00-0000"
_IBAN = re.compile(rb"AA00[Aae0]{11}")
# IP shapes, on the lowercased dump with hex digits folded to "h" (IPv6) or digits to "0" (IPv4).
_HEX = bytes.maketrans(b"0123456789abcdef", b"h" * 16)
_IPV4 = re.compile(rb"0\.0{1,3}\.0{1,3}\.0")
_IPV6 = re.compile(rb"h:h{1,4}:h{1,4}:h{1,4}:h{1,4}:h{1,4}:h{1,4}:h")
# Non-ASCII characters Relay's case-insensitive matching treats as ASCII letters (Unicode simple
# case folding: long s, Kelvin sign; dotless i for good measure), in UTF-8.
_ASCII_FOLDS = ((b"\xc5\xbf", b"s"), (b"\xe2\x84\xaa", b"k"), (b"\xc4\xb1", b"i"))
# Non-ASCII characters that Rust's Unicode \d or \s may match (card numbers, IBAN digits). Every
# decimal digit Unicode added after Python's database is outside the BMP, so that range counts too.
_WIDE_DIGIT_OR_SPACE = re.compile("[" + "".join(
    re.escape(chr(cp)) for cp in range(0x80, 0x10000)
    if unicodedata.category(chr(cp)) == "Nd" or chr(cp).isspace()) + "\U00010000-\U0010ffff]")
_WIDE_D = r"[\d\U00010000-\U0010ffff]"
_WIDE_CARD = re.compile(_WIDE_D + r"(?:(?:[-\s]|\\[nrtf]|\\u000b)?" + _WIDE_D + "){14}")
_WIDE_IBAN = re.compile(r"[A-Z]{2}" + _WIDE_D + r"{2}[A-Za-z0-9]{11}")
# The earliest/latest `received` whose conversion is reproduced (years 1970 to 9999).
_LATEST_TIMESTAMP = 253402300799.0
# JSON number tokens with a fraction or an exponent (numbers follow ":", "," or "[" in orjson's
# output; a match inside a string is only an extra check).
_FLOAT_TOKEN = re.compile(rb"[:,\[](-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)")
_POWERS_OF_TEN = [float(10 ** k) for k in range(23)]  # all exact doubles


class Precheck:
    """Tells whether one configuration's rules could change an event; see the module docstring.

    Immutable after construction; safe to share between threads.
    """

    def __init__(self, *, key_names: Iterable[str], sensitive: Iterable[str], ip_rules: bool,
                 email_everywhere: bool) -> None:
        """Build the checks. ``key_names``: keys a rule is bound to (ASCII, compared exactly,
        case-insensitively); ``sensitive``: extra substrings (``sensitive_fields``); ``ip_rules``:
        also look for IP addresses; ``email_everywhere``: look for e-mail addresses in every string,
        not only in ``logentry.formatted``. Never raises; does not block."""
        self._keys = frozenset(name.lower().encode() for name in key_names) | frozenset(_EXACT_PASSWORD_WORDS)
        self._words = _WORDS + tuple(field.lower().encode() for field in sensitive)
        self._ip_rules = ip_rules
        self._email_everywhere = email_everywhere

    def could_change(self, event: dict, dump: bytes) -> bool:
        """Return False only if no rule can change ``event``, whose JSON encoding is ``dump``.

        ``dump`` must be ``orjson.dumps(event)``: the checks run over it (strings keep their
        characters there except for JSON escapes, which the checks allow for). Pure CPU, ~0.1 ms
        for a 6 KB event; never raises.
        """
        if b"\\u0000" in dump:
            return True  # Relay drops NULs before matching, which can join two halves of a match
        low = dump.lower()
        if not low.isascii():
            for wide, ascii_letter in _ASCII_FOLDS:
                if wide in low:
                    low = low.replace(wide, ascii_letter)
        shape = dump.translate(_SHAPE)
        if not floats_survive_relay(dump, shape):
            return True
        for word in self._words:
            if word in low:
                return True
        if _API_KEY.search(low) or _PRIVATE_KEY.search(low) or b"-----begin" in low or _URL_AUTH.search(dump):
            return True
        if not self._keys.isdisjoint(low.split(b'"')):
            return True  # a key a rule is bound to (a dict key or the name of a [name, value] pair)
        if self._digit_patterns(dump, shape):
            return True
        if self._email_everywhere or b"gen_ai" in low or b"mcp." in low:
            if _EMAIL.search(dump):
                return True
        else:
            logentry = event.get("logentry")
            formatted = logentry.get("formatted") if isinstance(logentry, dict) else None
            if isinstance(formatted, str) and _EMAIL.search(formatted.encode("utf-8", "surrogatepass")):
                return True
        return self._ip_rules and _has_ip(low)

    @staticmethod
    def _digit_patterns(dump: bytes, shape: bytes) -> bool:
        if _SSN in shape or _IBAN.search(shape):
            return True
        spaced = dump
        if _ESCAPED_SPACE_DIGIT.search(dump):
            for escape in _ESCAPED_SPACES:
                spaced = spaced.replace(escape, b" ")
        if _CARD in spaced.translate(_DIGITS, b" -"):
            return True
        if not dump.isascii():
            # Rust's \d and \s are Unicode-aware: redo card and IBAN with Unicode classes, but only
            # when some non-ASCII character could be a digit or a space (rare, and slow to check).
            text = dump.decode("utf-8", "surrogatepass")
            if _WIDE_DIGIT_OR_SPACE.search(text):
                return bool(_WIDE_CARD.search(text) or _WIDE_IBAN.search(text))
        return False

    def __repr__(self) -> str:
        return (f"Precheck(keys={len(self._keys)}, words={len(self._words)}, ip_rules={self._ip_rules}, "
                f"email_everywhere={self._email_everywhere})")


def _has_ip(low: bytes) -> bool:
    if b"::" in low or b"fe80:" in low:
        return True  # every compressed IPv6 form has "::"; link-local ones start with fe80:
    if _IPV4.search(low.translate(_DIGITS)):
        return True
    return bool(_IPV6.search(low.translate(_HEX)))


# -- which configurations were analysed --------------------------------------------------------

# Rules whose triggers are checked in every string, wherever their selector points.
_VALUE_RULES = frozenset({"@common:filter", "@creditcard:replace", "@iban:replace", "@usssn:replace",
                          "@bearer:replace", "@email:replace", "@ip:replace", "strip-fields"})
# Rules that act on whatever sits under the keys their selector names.
_KEY_RULES = frozenset({"@anything:filter", "@anything:remove", "@cookies:filter"})
_SEGMENT = r"(?:'[^']*'|[^.'\s()!&|]+)"
_PATH = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
# Where the replace-only e-mail rule applies: the log message and gen_ai/MCP span data.
_EMAIL_ONLY_AT = re.compile(r"\$logentry\.formatted|\$log\.body"
                            r"|\$span\.data\.'(?:gen_ai|mcp)\.[^']*'|attributes\.'(?:gen_ai|mcp)\.[^']*'\.value")
_REGEX_META = set("\\.+*?()|[]{}^$#&-~")


def precheck_for(configs: list[dict], sensitive_fields: Iterable[str]) -> Precheck | None:
    """Return a :class:`Precheck` for the Relay PII ``configs`` a scrubber applies, or None.

    None means "not analysed: always call Relay": more than one config (advanced rules), a rule or
    selector shape not listed above, sensitive fields that JSON would escape, or a ``sentry-relay``
    other than :data:`ANALYSED_RELAY_VERSION`. ``sensitive_fields`` are the settings' own, checked
    against the ``strip-fields`` rule Relay built from them. Pure; never raises.
    """
    if len(configs) != 1 or _relay_version() != ANALYSED_RELAY_VERSION:
        return None
    (config,) = configs
    if set(config) - {"rules", "applications"}:
        return None
    fields = [field.strip() for field in sensitive_fields if field.strip()]
    rules = config.get("rules") or {}
    if fields or rules:
        rule = rules.get("strip-fields")
        if set(rules) != {"strip-fields"} or not isinstance(rule, dict) or rule.get("type") != "redact_pair":
            return None
        if not all(field.isascii() and field.isprintable() and '"' not in field and "\\" not in field
                   for field in fields):
            return None  # JSON would escape it, or case folding differs: let Relay decide
        if rule.get("keyPattern") != "|".join(_rust_escape(field) for field in fields):
            return None
    key_names: set[str] = set()
    ip_rules = email_everywhere = False
    for selector, names in (config.get("applications") or {}).items():
        if set(names) <= _VALUE_RULES:
            ip_rules |= "@ip:replace" in names
            if "@email:replace" in names:
                email_everywhere |= not all(_EMAIL_ONLY_AT.fullmatch(alt) for alt in selector.split(" || "))
        elif set(names) <= _KEY_RULES:
            keys = [_last_key(alternative) for alternative in selector.split(" || ")]
            if not all(keys):
                return None
            key_names.update(keys)  # type: ignore[arg-type]
        else:
            return None
    return Precheck(key_names=key_names, sensitive=fields, ip_rules=ip_rules, email_everywhere=email_everywhere)


def _last_key(alternative: str) -> str | None:
    # "*.cookies.session" -> "session"; "*.'http.request.header.cookie'.*" -> the quoted key: a
    # value can only sit under that key if the key itself is in the event.
    alternative = alternative.strip()
    if not _PATH.fullmatch(alternative):
        return None
    segments = re.findall(_SEGMENT, alternative)
    while segments and segments[-1] == "*":
        segments.pop()
    if not segments or segments[-1].startswith("$") or segments[-1] in ("*", "**"):
        return None
    key = segments[-1].strip("'")
    return key if key.isascii() and '"' not in key and "\\" not in key else None


def _rust_escape(field: str) -> str:
    return "".join("\\" + char if char in _REGEX_META else char for char in field)


def _relay_version() -> str | None:
    try:
        return version("sentry-relay")
    except PackageNotFoundError:
        return None


def only_lengths_in_meta(meta: Any) -> bool:
    """Return True if ``meta`` (an event's ``_meta``) is absent or only records original lengths.

    That is the normalizer's note on a trimmed list or object (``{"": {"len": 13}}``), as for a
    long ``sys.argv``. Pure; never raises (a malformed ``_meta`` is simply not "only lengths").
    """
    if meta is None:
        return True
    if not isinstance(meta, dict):
        return False
    for key, value in meta.items():
        if key == "":
            if not isinstance(value, dict) or set(value) - {"len"}:
                return False
        elif not only_lengths_in_meta(value):
            return False
    return True


def _relay_parse(token: bytes) -> float | None:
    # How Relay's JSON parser reads a decimal number: the digits as a 64-bit integer converted to
    # a double, then one division by a power of ten. That is not always the nearest double (for
    # more than 2**53 significant digits it rounds twice); None where we do not reproduce it.
    digits, _, fraction = token.lstrip(b"-").partition(b".")
    if not digits.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 22:
        return None
    significand = int(digits + fraction)
    if significand >= 2 ** 64:
        return None
    value = float(significand) / _POWERS_OF_TEN[len(fraction)]
    return -value if token.startswith(b"-") else value


def floats_survive_relay(dump: bytes, shape: bytes | None = None) -> bool:
    """Return True if Relay reads back every float in the JSON ``dump`` as the same double.

    Relay's JSON parser is not correctly rounded for some decimals (more than 2**53 in the
    significant digits, large exponents); an event holding such a float comes back from Relay
    changed by one unit in the last place, so it must go to Relay. Only numbers with 16 or more
    digits or with an exponent can be affected, so only those are parsed. ``dump`` must be
    orjson's (its exponents always carry a sign); ``shape`` is ``dump.translate(_SHAPE)`` if the
    caller has it. Pure CPU; never raises.
    """
    if shape is None:
        shape = dump.translate(_SHAPE)
    if _EXPONENTS[0] in shape or _EXPONENTS[1] in shape:
        return all(_survives(match.group(1)) for match in _FLOAT_TOKEN.finditer(dump))
    # 16+ digits with at most one dot hold a run of 8 digits: look only around those.
    start, size = 0, len(shape)
    while (index := shape.find(b"00000000", start)) >= 0:
        first, end = index, index + 8
        while first > 0 and shape[first - 1] in _DIGIT_OR_DOT:
            first -= 1
        while end < size and shape[end] in _DIGIT_OR_DOT:
            end += 1
        token = dump[first:end]
        if token.count(b".") == 1 and not _survives(token):
            return False
        start = end
    return True


def _survives(token: bytes) -> bool:
    if b"." not in token and b"e" not in token and b"E" not in token:
        return True  # an integer: Relay keeps it exactly
    try:
        return _relay_parse(token) == float(token)
    except ValueError:
        return False


def relay_timestamp(value: Any) -> float | None:
    """Return ``value`` as Relay writes back a timestamp it read, or None if that is not reproduced.

    Relay reads the JSON number (see :func:`floats_survive_relay`), splits it into whole seconds and truncated nanoseconds and writes it back as
    seconds plus microseconds rounded half away from zero, so ``received`` (set by us after
    normalization) comes back rounded to the microsecond. Reproduced for finite ints and floats
    from 0 up to the end of year 9999; None for anything else. Pure; never raises.
    """
    if type(value) is int:
        value = float(value) if 0 <= value <= _LATEST_TIMESTAMP else None
    if type(value) is not float or not (0.0 <= value <= _LATEST_TIMESTAMP) or math.isnan(value):
        return None
    value = _relay_parse(repr(value).encode())  # repr: the shortest form, as orjson writes it
    if value is None:
        return None
    seconds = math.trunc(value)
    nanos = math.trunc((value - seconds) * 1e9)
    micros = nanos / 1000.0
    whole = math.floor(micros)
    if micros - whole >= 0.5:
        whole += 1
    return float(seconds) + whole / 1e6
