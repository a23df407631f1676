"""Outgoing HTTP(S) through a forward proxy, as configured (never from HTTP_PROXY & co. in the environment).

`http_proxy` carries http:// requests (the proxy sees them whole); `https_proxy` carries https:// requests in a
CONNECT tunnel, so TLS, and the check of the server's certificate, stays end to end. `no_proxy` is the usual
comma-separated list of hosts that go direct:
  `*`                       every host;
  `idp.example.com`         that host and its subdomains (`a.idp.example.com`); a leading `.` or `*.` is ignored;
  `10.0.0.7`, `::1`         that address, when the URL names it literally;
  `10.0.0.0/8`, `fd00::/8`  any address in the network, when the URL names an address literally.
Names are compared as written in the URL (case-insensitively, without a trailing dot), never resolved.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOST_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$", re.ASCII)


@dataclass(frozen=True, slots=True)
class NoProxy:
    everything: bool = False
    names: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    def bypasses(self, host: str) -> bool:
        """Whether a request to `host` (as in the URL; IPv6 without brackets) goes direct."""
        if self.everything:
            return True
        host = host.strip("[]").rstrip(".").lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return any(host == name or host.endswith("." + name) for name in self.names)
        return any(address in network for network in self.networks)


@dataclass(frozen=True, slots=True)
class ProxySettings:
    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: NoProxy = NoProxy()

    @classmethod
    def parse(cls, http_proxy: str = "", https_proxy: str = "", no_proxy: str = "") -> ProxySettings:
        """From the settings' text (empty: none); ValueError naming the setting and the problem."""
        return cls(
            _proxy_url("jwks_http_proxy", http_proxy),
            _proxy_url("jwks_https_proxy", https_proxy),
            parse_no_proxy(no_proxy),
        )

    @property
    def enabled(self) -> bool:
        return self.http_proxy is not None or self.https_proxy is not None

    def proxy_for(self, scheme: str, host: str) -> str | None:
        """The proxy URL for a request, or None to connect directly."""
        proxy = self.https_proxy if scheme == "https" else self.http_proxy if scheme == "http" else None
        if proxy is None or self.no_proxy.bypasses(host):
            return None
        return proxy


def parse_no_proxy(text: str) -> NoProxy:
    everything = False
    names: list[str] = []
    networks: list[IPNetwork] = []
    for raw in text.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            everything = True
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        name = entry.removeprefix("*.").lstrip(".").rstrip(".")
        if "://" in name:
            raise ValueError(f"jwks_no_proxy entry {raw.strip()!r} is a URL; list the host name alone")
        if ":" in name:
            raise ValueError(f"jwks_no_proxy entry {raw.strip()!r}: ports are not supported")
        if not _HOST_NAME.match(name):
            raise ValueError(f"jwks_no_proxy entry {raw.strip()!r} is not a host name, an address or a network")
        names.append(name)
    return NoProxy(everything, tuple(names), tuple(networks))


def _proxy_url(setting: str, text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    # The messages never repeat the value: it may carry the proxy's credentials (http://user:password@host:port).
    parts = urlsplit(text)
    if parts.scheme != "http":
        raise ValueError(f"{setting} must be an http:// URL (the proxy is reached over plain HTTP)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{setting} has a bad port") from None
    if not parts.hostname or port is None:
        raise ValueError(f"{setting} must name a host and a port, e.g. http://proxy.internal:3128")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{setting} must be just http://host:port")
    return text
