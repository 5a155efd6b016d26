"""The client's IP address: from the socket, or from ``X-Forwarded-For`` when a trusted proxy relays.

Only ``[server] trusted_proxies`` (addresses or CIDR networks) are believed: the address is the
right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy, so a client cannot claim an
address by sending the header itself. SDKs that want the server to fill in the user's IP send
``user.ip_address: "{{auto}}"``; browsers and mobile apps get it by default, as in Sentry.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any, Iterable

__all__ = ["client_ip", "parse_networks", "fill_auto_ip"]

# Platforms whose events get the client IP even without "{{auto}}" (Sentry infers it for these).
_INFER_PLATFORMS = frozenset(("javascript", "cocoa", "objc"))


def parse_networks(values: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse addresses/CIDRs. Raises ValueError naming a bad entry."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IP address or network") from exc
    return tuple(networks)


@lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address: Any, networks: tuple) -> bool:
    return address is not None and any(address in network for network in networks)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: tuple) -> str | None:
    """Return the client's IP: the socket peer, or past trusted proxies the X-Forwarded-For chain. Never raises."""
    peer_address = _address(peer) if peer else None
    if not forwarded_for or not _trusted(peer_address, trusted):
        return str(peer_address) if peer_address is not None else peer
    for entry in reversed(forwarded_for.split(",")[-32:]):
        address = _address(entry)
        if address is None:
            break
        if not _trusted(address, trusted):
            return str(address)
    return str(peer_address)


def fill_auto_ip(event: dict[str, Any], ip: str | None) -> None:
    """Replace ``{{auto}}`` user/request IPs with ``ip`` (and infer it for browser/mobile platforms)."""
    if not ip:
        return
    user = event.get("user")
    wants = isinstance(user, dict) and user.get("ip_address") == "{{auto}}"
    if wants or (event.get("platform") in _INFER_PLATFORMS and not (isinstance(user, dict) and user.get("ip_address"))):
        user = user if isinstance(user, dict) else {}
        user["ip_address"] = ip
        if user.get("sentry_user") in (None, "ip:{{auto}}"):
            user["sentry_user"] = f"ip:{ip}"
        event["user"] = user
    env = (event.get("request") or {}).get("env") if isinstance(event.get("request"), dict) else None
    if isinstance(env, dict) and env.get("REMOTE_ADDR") == "{{auto}}":
        env["REMOTE_ADDR"] = ip
