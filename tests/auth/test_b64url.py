"""fe.auth.b64url: the one base64url codec (tokens, JWKs, the dev tools) — strict, canonical, unpadded."""

from __future__ import annotations

import base64
import os

import pytest

from fe.auth import b64url
from fe.auth.jwk import KeyParseError, parse_jwk
from tests.auth.jose_helpers import jwk_with


@pytest.mark.parametrize("length", range(40))
def test_round_trip_matches_the_standard_library(length: int) -> None:
    raw = os.urandom(length)
    text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    assert b64url.encode(raw) == text
    assert b64url.decode(text) == raw
    assert b64url.decode(text.encode("ascii")) == raw


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("YQ==", "padded"),
        ("YQ=", "padded"),
        ("YWJj=", "padded"),
        ("a+bc", "outside the alphabet"),
        ("a/bc", "outside the alphabet"),
        ("ab c", "outside the alphabet"),
        ("abc\n", "outside the alphabet"),
        ("ab.c", "outside the alphabet"),
        ("\x00abc", "outside the alphabet"),
        ("Y", "impossible length"),
        ("abcde", "impossible length"),
        ("YR", "non-zero trailing bits"),  # 'R' = 17: low 4 bits set, where "YQ" is the one spelling of b"a"
        ("YWJ", "non-zero trailing bits"),  # 'J' = 9: low 2 bits set
        ("ünï", "non-ASCII"),
    ],
)
def test_strict_decoding(text: str, why: str) -> None:
    with pytest.raises(b64url.Base64urlError, match=why):
        b64url.decode(text)
    if text.isascii():
        with pytest.raises(b64url.Base64urlError, match=why):
            b64url.decode(text.encode("ascii"))


def test_empty_is_empty() -> None:
    assert b64url.decode("") == b"" and b64url.encode(b"") == ""


def test_jwk_members_may_be_padded_but_must_be_canonical() -> None:
    jwk = jwk_with("RS256")
    n_bytes = b64url.decode(jwk["n"])
    padded = base64.urlsafe_b64encode(n_bytes).decode("ascii")
    assert padded.endswith("==")  # a 2048-bit modulus is 256 bytes, 1 more than a multiple of 3
    assert parse_jwk({**jwk, "n": padded}).public_key == parse_jwk(jwk).public_key
    with pytest.raises(KeyParseError, match="base64url"):
        parse_jwk({**jwk, "n": padded + "=="})
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = jwk["n"][-1]
    with pytest.raises(KeyParseError, match="base64url"):
        parse_jwk({**jwk, "n": jwk["n"][:-1] + alphabet[alphabet.index(last) + 1]})
