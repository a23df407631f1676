"""A token user's JSON without jwks_url: accepted when required_issuer names issuers whose discovery documents fe
may fetch (https://, or http:// under discovery_allow_http, with a warning), stored without jwks_url, and read
back as a spec that discovers its keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fe.auth.token_spec import (
    InvalidAuthString,
    TokenAuthSpec,
    check_discovery_issuers,
    parse_token_auth_string,
)

IDP = "https://idp.example/realms/main"


def parse(doc: dict[str, object], tmp_path: Path, **options: bool) -> tuple[TokenAuthSpec, list[str]]:
    return parse_token_auth_string(json.dumps(doc), tmp_path, **options)


def test_required_issuer_alone_discovers_keys(tmp_path: Path) -> None:
    spec, warnings = parse({"required_issuer": IDP, "required_audience": "fe"}, tmp_path)
    assert spec.discovers_keys and not spec.is_remote and spec.jwks_url == ""
    assert spec.required_issuer == (IDP,)
    assert warnings == []
    stored = spec.to_json()
    assert "jwks_url" not in json.loads(stored)
    assert json.loads(stored) == {"principal_field": "sub", "required_issuer": [IDP], "required_audience": ["fe"]}
    assert TokenAuthSpec.from_json(stored) == spec


def test_several_issuers_in_every_form(tmp_path: Path) -> None:
    other = "https://login.example.com/"
    spec, _ = parse({"required_issuer": f"{IDP}, {other}"}, tmp_path)
    assert spec.required_issuer == (IDP, other)
    spec, _ = parse({"required_issuer": [IDP, other]}, tmp_path)
    assert spec.required_issuer == (IDP, other)


def test_a_spec_with_jwks_url_is_unchanged(tmp_path: Path) -> None:
    spec, _ = parse({"jwks_url": "https://idp.example/certs", "required_issuer": "fe-dev"}, tmp_path)
    assert not spec.discovers_keys and spec.is_remote
    assert json.loads(spec.to_json())["jwks_url"] == "https://idp.example/certs"


def test_neither_jwks_url_nor_required_issuer(tmp_path: Path) -> None:
    with pytest.raises(InvalidAuthString, match=r"^'jwks_url' is required \(or 'required_issuer', to find"):
        parse({"principal_field": "sub"}, tmp_path)


@pytest.mark.parametrize(
    ("issuer", "problem"),
    [
        ("fe-dev", "is not an https:// URL"),
        ("HTTPS://idp.example", "is not an https:// URL"),
        ("ftp://idp.example", "is not an https:// URL"),
        ("http://idp.example", "is plain http:// (discovery_allow_http = true allows it"),
        ("https://", "has no host"),
        ("https://user:pw@idp.example", "carries credentials"),
        ("https://idp.example/?tenant=1", "has a query or fragment"),
        ("https://idp.example/#x", "has a query or fragment"),
        ("https://idp.example:99999", "has a bad port"),
        ("https://idp.example/a b", "contains spaces"),
    ],
)
def test_an_issuer_keys_cannot_be_discovered_from_is_refused(issuer: str, problem: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidAuthString) as info:
        parse({"required_issuer": [IDP, issuer]}, tmp_path)
    assert str(info.value).startswith(f"'required_issuer' {issuer!r} {problem}")
    assert "OpenID Connect Discovery" in str(info.value)


def test_plain_http_issuers_only_with_discovery_allow_http_and_a_warning(tmp_path: Path) -> None:
    lab = "http://127.0.0.1:8080"
    spec, warnings = parse({"required_issuer": lab, "required_audience": "fe"}, tmp_path, discovery_allow_http=True)
    assert spec.discovers_keys
    assert len(warnings) == 1 and lab in warnings[0] and "discovery_allow_http = true" in warnings[0]
    # require_https_key_urls is about jwks_url only.
    _, warnings = parse({"required_issuer": IDP}, tmp_path, require_https=True)
    assert len(warnings) == 1 and "required_audience" in warnings[0]


def test_check_discovery_issuers_for_integrations() -> None:
    assert check_discovery_issuers((IDP,), False) == []
    assert len(check_discovery_issuers(("http://lab",), True)) == 1
    with pytest.raises(InvalidAuthString):
        check_discovery_issuers((IDP, "corp"), True)
