"""Proxy settings for key fetches: which requests go through which proxy, jwks_no_proxy's matching, validation."""

from __future__ import annotations

import pytest

from fe.auth.http_proxy import ProxySettings, parse_no_proxy

HTTP_PROXY = "http://proxy.internal:3128"
HTTPS_PROXY = "http://tunnel.internal:3129"


@pytest.mark.parametrize(
    ("no_proxy", "host", "bypass"),
    [
        ("", "idp.example.com", False),
        ("*", "idp.example.com", True),
        ("*", "10.1.2.3", True),
        ("idp.example.com", "idp.example.com", True),
        ("idp.example.com", "IDP.Example.COM", True),
        ("idp.example.com", "idp.example.com.", True),
        ("idp.example.com", "eu.idp.example.com", True),
        ("idp.example.com", "badidp.example.com", False),  # a suffix only at a dot
        ("idp.example.com", "idp.example.com.evil", False),
        ("idp.example.com", "example.com", False),
        (".example.com", "example.com", True),
        (".example.com", "idp.example.com", True),
        ("*.example.com", "idp.example.com", True),
        ("localhost", "localhost", True),
        ("localhost", "127.0.0.1", False),  # names are not resolved, addresses not reverse-resolved
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("127.0.0.1", "localhost", False),
        ("10.0.0.0/8", "10.200.3.4", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("10.0.0.0/8", "ten.internal", False),
        ("10.1.2.3/8", "10.9.9.9", True),  # host bits in a network are forgiven
        ("192.168.0.0/16, 10.0.0.0/8", "10.0.0.1", True),
        ("::1", "::1", True),
        ("[::1]", "::1", True),
        ("::1", "[::1]", True),
        ("fd00::/8", "fd12:3456::1", True),
        ("fd00::/8", "fe80::1", False),
        ("10.0.0.0/8", "::ffff:10.0.0.1", False),  # v4 networks match v4 addresses only
        (" idp.example.com ,, 10.0.0.0/8 ", "idp.example.com", True),
    ],
)
def test_no_proxy_matching(no_proxy: str, host: str, bypass: bool) -> None:
    assert parse_no_proxy(no_proxy).bypasses(host) is bypass


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("idp.example.com:443", "ports are not supported"),
        ("idp example", "is not a host name, an address or a network"),
        ("http://idp.example.com", "is a URL; list the host name alone"),
        ("idp/example", "is not a host name"),
        ("10.0.0.0/33", "is not a host name"),
    ],
)
def test_bad_no_proxy_entries(entry: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_no_proxy(f"localhost, {entry}")
    assert message in str(info.value) and "jwks_no_proxy" in str(info.value)


def test_each_scheme_uses_its_own_proxy() -> None:
    proxy = ProxySettings.parse(HTTP_PROXY, HTTPS_PROXY, "10.0.0.0/8")
    assert proxy.enabled
    assert proxy.proxy_for("http", "idp.example.com") == HTTP_PROXY
    assert proxy.proxy_for("https", "idp.example.com") == HTTPS_PROXY
    assert proxy.proxy_for("https", "10.1.1.1") is None
    assert proxy.proxy_for("ftp", "idp.example.com") is None


def test_one_proxy_only() -> None:
    http_only = ProxySettings.parse(http_proxy=HTTP_PROXY)
    assert http_only.proxy_for("http", "idp") == HTTP_PROXY and http_only.proxy_for("https", "idp") is None
    https_only = ProxySettings.parse(https_proxy=HTTPS_PROXY)
    assert https_only.proxy_for("http", "idp") is None and https_only.proxy_for("https", "idp") == HTTPS_PROXY
    assert not ProxySettings.parse().enabled
    assert not ProxySettings.parse(no_proxy="*").enabled


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://proxy.internal:3128", "must be an http:// URL"),
        ("socks5://proxy.internal:1080", "must be an http:// URL"),
        ("proxy.internal:3128", "must be an http:// URL"),
        ("http://proxy.internal", "must name a host and a port"),
        ("http://:3128", "must name a host and a port"),
        ("http://proxy.internal:99999", "bad port"),
        ("http://proxy.internal:3128/path", "must be just http://host:port"),
        ("http://user:s3cret@proxy.internal:3128/x?y", "must be just http://host:port"),
    ],
)
def test_bad_proxy_urls_are_named_without_their_value(url: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        ProxySettings.parse(https_proxy=url)
    assert message in str(info.value) and "jwks_https_proxy" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_proxy_credentials_are_allowed() -> None:
    proxy = ProxySettings.parse(http_proxy="http://fe:s3cret@proxy.internal:3128")
    assert proxy.proxy_for("http", "idp") == "http://fe:s3cret@proxy.internal:3128"
