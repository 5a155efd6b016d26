"""Password hashing for web UI users: scrypt with a per-user random salt, never stored in clear.

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``, so the cost can be raised later
while old hashes still verify. Both functions block the CPU for tens of milliseconds (run them in a
worker thread from async code).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["hash_password", "verify_password", "MIN_PASSWORD_LENGTH"]

#: Shortest password ``minisentry users create`` accepts.
MIN_PASSWORD_LENGTH = 8
_N, _R, _P = 2**14, 8, 1
_DKLEN = 32
# A hash to verify against when the email is unknown, so both paths take the same time.
_DUMMY = None


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=128 * r * (n + p + 2) * 2,
                          dklen=_DKLEN)


def hash_password(password: str) -> str:
    """Return the storable hash of ``password`` with a fresh 16-byte salt. Blocks (CPU); raises nothing."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (None: an unknown user; still spends the same time).

    Compares in constant time; a malformed stored hash never matches. Blocks (CPU); raises nothing.
    """
    global _DUMMY
    if stored is None:
        if _DUMMY is None:
            _DUMMY = hash_password(secrets.token_hex(8))
        verify_password(password, _DUMMY)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
        return hmac.compare_digest(computed, bytes.fromhex(digest))
    except (ValueError, MemoryError):
        return False
