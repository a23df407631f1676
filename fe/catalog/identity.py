"""User identities: `'name'@'host'` formatting, and which stored host patterns a client address matches.

Hosts are `%` (anywhere), an exact address, or a LIKE-style pattern (`%` any run, `_` one character).
A login picks the most specific match: exact address, then patterns (longest literal part first), then `%`.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

ANY_HOST = "%"
_LOOPBACK_NAMES = ("localhost",)


def format_identity(name: str, host: str) -> str:
    return f"'{name}'@'{host}'"


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


def match_rank(host: str, client_ip: str) -> tuple[int, int] | None:
    """How well a stored host matches a (normalised) client address; lower sorts first; None = no match."""
    if host == ANY_HOST:
        return (2, 0)
    if is_pattern(host):
        if like_regex(host).fullmatch(client_ip):
            literal = len(host) - host.count("%") - host.count("_")
            return (1, -literal)
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
