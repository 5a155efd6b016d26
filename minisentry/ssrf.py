"""Outbound HTTP to URLs users configure or events name, without reaching what it must not (SSRF).

Two features send requests to addresses they do not control: the source-map fetcher (URLs from
events) and alert webhooks (URLs from config). Both follow one policy, kept here:

- a host's every resolved address is vetted (a name that resolves to one public and one private
  address is refused): only global unicast addresses pass, and an IPv6 address that carries an
  IPv4 one (IPv4-mapped, 6to4) is judged by the IPv4 address it carries;
- the request then goes to the vetted address itself, with the host name as ``Host`` and TLS server
  name (:func:`pinned_target`), so DNS answering differently a moment later (rebinding) cannot
  swap the address between the check and the connection.

The callers raise their own errors (FetchRefused, AlertRefused) from the problems reported here.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urlunsplit

import anyio

__all__ = ["address_problem", "resolve_addresses", "pinned_target"]


def address_problem(address: str, allowed: tuple = ()) -> str | None:
    """Why ``address`` (an IP literal; an IPv6 zone is ignored) may not be reached, or None if it may.

    ``allowed`` holds ip_network objects that are reachable even when not public. Never raises.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address[:100]!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 form that carries an IPv4 address is as private as the IPv4 address it carries.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
    if any(ip in network for network in allowed):
        return None
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback:
        return f"address {ip} is not public (loopback, private, link-local, multicast or reserved)"
    return None


async def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, without duplicates, in resolver order.

    Waits for the resolver (in a worker thread). Raises OSError or UnicodeError as getaddrinfo does.
    """
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def pinned_target(parts: SplitResult, host: str, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL aimed at ``address`` instead of ``host``, the ``Host`` header and httpx's extensions.

    ``parts`` is the split original URL (http or https). Never raises.
    """
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = f"[{address}]" if ":" in address else address
    url = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    default_port = port == (443 if parts.scheme == "https" else 80)
    headers = {"Host": host if default_port else f"{host}:{port}"}
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return url, headers, extensions
