"""A principal_field starting with "/" is a JSON Pointer into the verified claims (StarRocks issue #71547): the value
found must be a string equal to the user name, exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fe.auth.token_spec import InvalidAuthString, TokenAuthSpec
from fe.auth.verifier import TokenRejected, TokenVerifier
from tests.auth.jose_helpers import FakeClock, claims_for, jwk_with, jwks, mint


@pytest.fixture
def key_file(home: Path) -> str:
    (home / "conf" / "k.jwks").write_text(json.dumps(jwks(jwk_with("ES256"))))
    return "k.jwks"


def token(clock: FakeClock, **claims: Any) -> str:
    return mint("ES256", claims_for("f81d4fae-7dec", clock.now, **claims))


async def refusal(verifier: TokenVerifier, token: str, spec: TokenAuthSpec, user: str = "tom") -> TokenRejected:
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(token, user, spec)
    return info.value


async def test_nested_claim_logs_in(key_file: str, verifier: TokenVerifier, clock: FakeClock) -> None:
    spec = TokenAuthSpec(key_file, principal_field="/realm_access/username")
    assert spec.principal_pointer == ("realm_access", "username")
    claims = await verifier.verify(token(clock, realm_access={"username": "tom", "roles": ["a"]}), "tom", spec)
    assert claims["realm_access"]["username"] == "tom"


async def test_escapes_and_array_indexes(key_file: str, verifier: TokenVerifier, clock: FakeClock) -> None:
    aws = TokenAuthSpec(key_file, principal_field="/https:~1~1sts.amazonaws.com~1/request_tags/starrocks_user")
    tagged = token(clock, **{"https://sts.amazonaws.com/": {"request_tags": {"starrocks_user": "data-eng"}}})
    assert await verifier.verify(tagged, "data-eng", aws)
    first = TokenAuthSpec(key_file, principal_field="/accounts/0/m~0n")
    assert await verifier.verify(token(clock, accounts=[{"m~n": "tom"}, {"m~n": "ann"}]), "tom", first)
    assert (await refusal(verifier, token(clock, accounts=[{"m~n": "ann"}]), first)).reason == "principal_mismatch"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({}, "principal_missing"),
        ({"realm_access": {}}, "principal_missing"),
        ({"realm_access": "tom"}, "principal_missing"),  # a string has no members
        ({"realm_access": {"username": None}}, "principal_missing"),
        ({"realm_access": {"username": ""}}, "principal_missing"),
        ({"realm_access": {"username": "Tom"}}, "principal_mismatch"),  # exact, as for flat claims
        ({"realm_access": {"username": "tom "}}, "principal_mismatch"),
        ({"realm_access": {"username": ["tom"]}}, "principal_mismatch"),
        ({"realm_access": {"username": {"name": "tom"}}}, "principal_mismatch"),
        ({"realm_access": {"username": 7}}, "principal_mismatch"),
        ({"realm_access": {"username": True}}, "principal_mismatch"),
        ({"realm_access/username": "tom"}, "principal_missing"),  # a flat claim with a slash is another name
    ],
)
async def test_what_the_pointer_finds_must_be_the_user_name(
    claims: dict[str, Any], reason: str, key_file: str, verifier: TokenVerifier, clock: FakeClock
) -> None:
    spec = TokenAuthSpec(key_file, principal_field="/realm_access/username")
    rejection = await refusal(verifier, token(clock, **claims), spec)
    assert rejection.reason == reason
    assert "/realm_access/username" in rejection.message
    assert rejection.signature_verified  # the token was genuine: its holder may learn why


async def test_a_plain_field_is_a_top_level_claim(key_file: str, verifier: TokenVerifier, clock: FakeClock) -> None:
    spec = TokenAuthSpec(key_file, principal_field="realm_access.username")
    assert spec.principal_pointer is None
    assert await verifier.verify(token(clock, **{"realm_access.username": "tom"}), "tom", spec)
    nested = token(clock, realm_access={"username": "tom"})
    assert (await refusal(verifier, nested, spec)).reason == "principal_missing"


def test_a_spec_with_a_malformed_pointer_cannot_be_made() -> None:
    with pytest.raises(InvalidAuthString) as info:
        TokenAuthSpec("k.jwks", principal_field="/a/~2")
    assert "not a valid JSON Pointer" in str(info.value) and "'~2'" in str(info.value)


def test_the_pointer_is_not_part_of_equality_or_the_stored_json() -> None:
    a = TokenAuthSpec("k.jwks", principal_field="/a~1b")
    b = TokenAuthSpec.from_json(a.to_json())
    assert a == b and hash(a) == hash(b) and b.principal_pointer == ("a/b",)
    assert json.loads(a.to_json()) == {"jwks_url": "k.jwks", "principal_field": "/a~1b"}
