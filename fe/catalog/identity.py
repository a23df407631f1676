"""User identities: `'name'@'host'` formatting, and which stored host patterns a client address matches.

Hosts are `%` (anywhere), an exact address, a domain (StarRocks' `'name'@['domain']`, stored as `[domain]`,
matched against the addresses the domain resolves to), or a LIKE-style pattern (`%` any run, `_` one character).
A login picks the most specific match: exact address, then domain, then patterns (longest literal part first),
then `%`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection
from functools import lru_cache

ANY_HOST = "%"
_LOOPBACK_NAMES = ("localhost",)


def format_identity(name: str, host: str) -> str:
    if is_domain(host):
        return f"'{name}'@['{domain_of(host)}']"
    return f"'{name}'@'{host}'"


def is_domain(host: str) -> bool:
    return host.startswith("[") and host.endswith("]")


def domain_of(host: str) -> str:
    return host[1:-1]


def _no_domains(_domain: str) -> Collection[str]:
    return ()


def normalize_client_ip(client_ip: str) -> str:
    """`::ffff:10.0.0.1` → `10.0.0.1`, so IPv4 clients on a dual-stack socket match IPv4 hosts."""
    try:
        address = ipaddress.ip_address(client_ip.split("%", 1)[0])
    except ValueError:
        return client_ip.lower()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def is_pattern(host: str) -> bool:
    return "%" in host or "_" in host


@lru_cache(maxsize=1024)
def like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE as a regex for fullmatch: case-insensitive, `%`, `_`, backslash escapes. Host patterns use it too."""
    parts = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            parts.append(re.escape(next(chars, "\\")))
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def match_rank(
    host: str, client_ip: str, domain_addresses: Callable[[str], Collection[str]] = _no_domains
) -> tuple[int, int] | None:
    """How well a stored host matches a (normalised) client address; lower sorts first; None = no match.

    `domain_addresses` gives the addresses a domain resolved to (the server resolves them in the background).
    """
    if host == ANY_HOST:
        return (3, 0)
    if is_domain(host):
        return (1, 0) if client_ip in domain_addresses(domain_of(host)) else None
    if is_pattern(host):
        if like_regex(host).fullmatch(client_ip):
            literal = len(host) - host.count("%") - host.count("_")
            return (2, -literal)
        return None
    if host.lower() == client_ip.lower():
        return (0, 0)
    if host.lower() in _LOOPBACK_NAMES and _is_loopback(client_ip):
        return (0, 1)
    return None


def _is_loopback(client_ip: str) -> bool:
    try:
        return ipaddress.ip_address(client_ip).is_loopback
    except ValueError:
        return False
